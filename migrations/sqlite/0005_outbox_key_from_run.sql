-- A delivery's idempotency key is its run's id (`communication:occurrence`), its
-- customer and, for one invoice, the invoice: derived, not stored. A run is
-- recorded in segd_trigger_runs (UNIQUE (communication, occurrence)) in the
-- transaction that writes its deliveries, and one run never holds a customer
-- (or customer and invoice) twice, so no key can repeat. Narrower rows and one
-- index fewer make enqueueing a large run about twice as fast.
CREATE TABLE segd_outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    communication TEXT NOT NULL,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    invoice_id TEXT,
    invoice_ids TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by TEXT,
    claimed_until TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
INSERT INTO segd_outbox_new (id, run_id, communication, channel, customer_id, invoice_id, invoice_ids,
    occurred_at, status, attempts, next_attempt_at, claimed_by, claimed_until, last_error, created_at, sent_at)
SELECT id, run_id, communication, channel, customer_id, invoice_id, invoice_ids,
    occurred_at, status, attempts, next_attempt_at, claimed_by, claimed_until, last_error, created_at, sent_at
FROM segd_outbox ORDER BY id;
DROP TABLE segd_outbox;
ALTER TABLE segd_outbox_new RENAME TO segd_outbox;
CREATE INDEX segd_outbox_due ON segd_outbox (status, next_attempt_at);
-- Only invoice messages name one invoice ("not sent by this communication before").
CREATE INDEX segd_outbox_invoice ON segd_outbox (communication, invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX segd_outbox_customer ON segd_outbox (communication, customer_id, created_at);
