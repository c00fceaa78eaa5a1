-- Connector blocks, `connector_name` and payment-method `connector` tests list
-- the customers linked to a few connectors. An index by connector that also
-- holds the customer gives that list from the index alone; the index on
-- `connector_id` only fetched each link's row for its customer.
DROP INDEX IF EXISTS customer_connectors_connector;
CREATE INDEX IF NOT EXISTS customer_connectors_connector_customer
    ON customer_connectors (connector_id, customer_id);

-- An invoice block's list is read from one of the unpaid indexes; with both
-- its date columns in each, a block that tests the due date and the creation
-- time reads no invoice row (PostgreSQL keeps its 0003 indexes: its plans were
-- slower with the wider ones).
DROP INDEX IF EXISTS invoices_unpaid_due;
DROP INDEX IF EXISTS invoices_unpaid_created;
CREATE INDEX IF NOT EXISTS invoices_unpaid_due ON invoices (status, due_date, customer_id, created_at)
    WHERE status IN ('open', 'partially_paid', 'overdue');
CREATE INDEX IF NOT EXISTS invoices_unpaid_created ON invoices (status, created_at, customer_id, due_date)
    WHERE status IN ('open', 'partially_paid', 'overdue');
