-- Trigger runs (the ledger of occurrences) and the delivery outbox.
CREATE TABLE segd_trigger_runs (
    id TEXT PRIMARY KEY,
    communication TEXT NOT NULL,
    occurrence TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    late BOOLEAN NOT NULL DEFAULT 0,
    recipients INTEGER NOT NULL DEFAULT 0,
    enqueued INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    UNIQUE (communication, occurrence)
);
CREATE TABLE segd_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
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
CREATE INDEX segd_outbox_due ON segd_outbox (status, next_attempt_at);
CREATE INDEX segd_outbox_invoice ON segd_outbox (communication, invoice_id);
CREATE INDEX segd_outbox_customer ON segd_outbox (communication, customer_id, created_at);
