-- SQLite only (its segment queries look related blocks up per customer through
-- these indexes); PostgreSQL keeps its indexes by customer and chooses its
-- joins by cost.
SELECT 1;
