-- Connector blocks, `connector_name` and payment-method `connector` tests list
-- the customers linked to a few connectors. An index by connector that also
-- holds the customer gives that list from the index alone; the index on
-- `connector_id` only fetched each link's row for its customer.
DROP INDEX IF EXISTS customer_connectors_connector;
CREATE INDEX IF NOT EXISTS customer_connectors_connector_customer
    ON customer_connectors (connector_id, customer_id);
