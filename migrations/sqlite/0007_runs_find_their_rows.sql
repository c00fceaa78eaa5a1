-- A run's deliveries are found through the run rather than through index
-- entries of their own, so that enqueueing a large run writes, besides the
-- rows, only their primary key entries:
-- - every row a run wrote has an id between its run's first_id and last_id
--   (a lookup also tests `run`, as on PostgreSQL, where rows of runs enqueued
--   at the same time may lie in between);
-- - its fresh rows (pending and never tried: next_attempt_at NULL) have ids
--   from fresh_from on (NULL: none left). Only enqueueing makes a row fresh (a
--   released or re-queued row is due at a time instead), so a run's fresh rows
--   are claimed forward and fresh_from only ever moves on.
-- The status index holds only what is waiting for a time or being sent, not
-- every row ever enqueued.
ALTER TABLE segd_trigger_runs ADD COLUMN first_id INTEGER;
ALTER TABLE segd_trigger_runs ADD COLUMN last_id INTEGER;
ALTER TABLE segd_trigger_runs ADD COLUMN fresh_from INTEGER;
UPDATE segd_trigger_runs SET
    first_id = (SELECT MIN(o.id) FROM segd_outbox o WHERE o.run = segd_trigger_runs.seq),
    last_id = (SELECT MAX(o.id) FROM segd_outbox o WHERE o.run = segd_trigger_runs.seq),
    fresh_from = (SELECT MIN(o.id) FROM segd_outbox o WHERE o.run = segd_trigger_runs.seq
                  AND o.status = 'pending' AND o.next_attempt_at IS NULL);
-- Claims: the runs with fresh rows, oldest first.
CREATE INDEX segd_trigger_runs_fresh ON segd_trigger_runs (seq) WHERE fresh_from IS NOT NULL;
DROP INDEX segd_outbox_run;
DROP INDEX segd_outbox_due;
-- Claims: retries by time, and rows being sent (leases).
CREATE INDEX segd_outbox_retry ON segd_outbox (next_attempt_at)
    WHERE status = 'pending' AND next_attempt_at IS NOT NULL;
CREATE INDEX segd_outbox_sending ON segd_outbox (id) WHERE status = 'sending';
