-- Members an email run cannot reach (no email address): counted on the run,
-- not enqueued. A held run that a later run sent with --allow-over-limit
-- names that run in released_by.
ALTER TABLE segd_trigger_runs ADD COLUMN unreachable BIGINT NOT NULL DEFAULT 0;
ALTER TABLE segd_trigger_runs ADD COLUMN released_by TEXT;
