-- Trigger runs (the ledger of occurrences) and the delivery outbox.
CREATE TABLE segd_trigger_runs (
    id TEXT PRIMARY KEY,
    communication TEXT NOT NULL,
    occurrence TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    status TEXT NOT NULL,
    late BOOLEAN NOT NULL DEFAULT FALSE,
    recipients BIGINT NOT NULL DEFAULT 0,
    enqueued BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    UNIQUE (communication, occurrence)
);
CREATE TABLE segd_outbox (
    id BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    communication TEXT NOT NULL,
    channel TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    invoice_id TEXT,
    invoice_ids TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    claimed_by TEXT,
    claimed_until TIMESTAMPTZ,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ
);
CREATE INDEX segd_outbox_due ON segd_outbox (status, next_attempt_at);
CREATE INDEX segd_outbox_invoice ON segd_outbox (communication, invoice_id);
CREATE INDEX segd_outbox_customer ON segd_outbox (communication, customer_id, created_at);
