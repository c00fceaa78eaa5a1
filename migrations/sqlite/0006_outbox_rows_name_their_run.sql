-- A delivery names its run by number and takes from the run what all of the
-- run's deliveries share: the communication, the channel, the run's instant and
-- when it was enqueued (the run's started_at). A delivery due at once has no
-- next_attempt_at. Rows of a third the width make enqueueing a large run about
-- twice as fast. The idempotency key is still `run id:customer[:invoice]`.
CREATE TABLE segd_trigger_runs_new (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    communication TEXT NOT NULL,
    occurrence TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
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
-- Runs from before this migration that wrote no delivery have no channel ('').
INSERT INTO segd_trigger_runs_new (id, communication, occurrence, kind, channel, occurred_at, started_at,
    finished_at, status, late, recipients, enqueued, error)
SELECT r.id, r.communication, r.occurrence, r.kind,
    COALESCE((SELECT o.channel FROM segd_outbox o WHERE o.run_id = r.id LIMIT 1), ''),
    r.occurred_at, r.started_at, r.finished_at, r.status, r.late, r.recipients, r.enqueued, r.error
FROM segd_trigger_runs r ORDER BY r.started_at, r.id;
CREATE TABLE segd_outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run INTEGER NOT NULL, -- segd_trigger_runs.seq; written with its run, in one transaction
    customer_id TEXT NOT NULL,
    invoice_id TEXT,
    invoice_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    claimed_by TEXT,
    claimed_until TEXT,
    last_error TEXT,
    sent_at TEXT
);
INSERT INTO segd_outbox_new (id, run, customer_id, invoice_id, invoice_ids, status, attempts, next_attempt_at,
    claimed_by, claimed_until, last_error, sent_at)
SELECT o.id, u.seq, o.customer_id, o.invoice_id, o.invoice_ids, o.status, o.attempts, o.next_attempt_at,
    o.claimed_by, o.claimed_until, o.last_error, o.sent_at
FROM segd_outbox o JOIN segd_trigger_runs_new u ON u.id = o.run_id ORDER BY o.id;
DROP TABLE segd_outbox;
DROP TABLE segd_trigger_runs;
ALTER TABLE segd_trigger_runs_new RENAME TO segd_trigger_runs;
ALTER TABLE segd_outbox_new RENAME TO segd_outbox;
-- min_interval: a communication's runs since an instant.
CREATE INDEX segd_trigger_runs_started ON segd_trigger_runs (communication, started_at);
-- Claims: fresh rows (next_attempt_at NULL) in id order, retries by time, leases.
CREATE INDEX segd_outbox_due ON segd_outbox (status, next_attempt_at);
-- email_invoice: "not sent by this communication before".
CREATE INDEX segd_outbox_invoice ON segd_outbox (invoice_id) WHERE invoice_id IS NOT NULL;
-- A run's deliveries, and min_interval's "reached since".
CREATE INDEX segd_outbox_run ON segd_outbox (run, customer_id);
