-- Segments and runs look for unpaid invoices (day counts only exist for them,
-- and dunning is what segments are for): index only those. The predicate is
-- written exactly as the segment compiler writes it (UNPAID_SQL), so the
-- planner can prove a query's invoices are all in the index.
DROP INDEX IF EXISTS invoices_status_due;
DROP INDEX IF EXISTS invoices_status_created;
CREATE INDEX IF NOT EXISTS invoices_unpaid_due ON invoices (status, due_date, customer_id)
    WHERE status IN ('open', 'partially_paid', 'overdue');
CREATE INDEX IF NOT EXISTS invoices_unpaid_created ON invoices (status, created_at, customer_id)
    WHERE status IN ('open', 'partially_paid', 'overdue');
