-- A delivery's idempotency key is its run's id (`communication:occurrence`), its
-- customer and, for one invoice, the invoice: derived, not stored. A run is
-- recorded in segd_trigger_runs (UNIQUE (communication, occurrence)) in the
-- transaction that writes its deliveries, and one run never holds a customer
-- (or customer and invoice) twice, so no key can repeat. Narrower rows and one
-- index fewer make enqueueing a large run about twice as fast.
ALTER TABLE segd_outbox DROP COLUMN idempotency_key;
DROP INDEX segd_outbox_invoice;
-- Only invoice messages name one invoice ("not sent by this communication before").
CREATE INDEX segd_outbox_invoice ON segd_outbox (communication, invoice_id) WHERE invoice_id IS NOT NULL;
