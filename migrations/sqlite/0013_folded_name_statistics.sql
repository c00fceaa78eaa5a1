-- PostgreSQL only (statistics of its case-folded names and emails); SQLite
-- folds case with the NOCASE indexes of migration 0011, which ANALYZE covers.
SELECT 1;
