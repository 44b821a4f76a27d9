-- Outbox scheduling: replies and other rows with a deadline first, an
-- operator-set priority, fair shares between channels, and a wake-up
-- notification for senders. See docs/OUTBOX.md, "Scheduling".

-- Higher goes first. An operator may change it at any time, for example
--   UPDATE outbox SET priority = 10 WHERE id = 42;
-- Adding a column with a constant default rewrites nothing.
ALTER TABLE outbox ADD COLUMN priority smallint NOT NULL DEFAULT 0;

-- One "lane" per (channel, endpoint, priority). A claim walks the distinct
-- lanes with a loose index scan and reads a few rows from each, so its cost
-- depends on the number of lanes and the batch size, never on how many
-- rows are queued. Inside a lane, rows with a deadline (not_after) come
-- first, earliest deadline first; then the rest by next_attempt_at, which
-- lets "(not_after IS NULL, coalesce(not_after, next_attempt_at)) <=
-- (true, now)" stop the scan at the first row that is not yet due.
CREATE INDEX outbox_lane_idx ON outbox
    (channel_id, endpoint, priority, (not_after IS NULL), (coalesce(not_after, next_attempt_at)), id)
    WHERE status IN ('pending', 'retrying');

-- Superseded by outbox_lane_idx: a single due order across every channel
-- is what let one channel's backlog delay every other channel.
DROP INDEX outbox_due_idx;

-- Senders LISTEN on linepipe_outbox and claim at once when a row becomes
-- due: inserted by the worker's handlers or an operator's INSERT, or put
-- back to pending by an operator's requeue. Polling remains only as the
-- fallback for a notification lost with a dropped connection. NOTIFY
-- folds repeats within one transaction, so a batch insert is one wake-up.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('linepipe_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
CREATE TRIGGER outbox_notify_requeue AFTER UPDATE OF status ON outbox
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status IS DISTINCT FROM 'pending')
    EXECUTE FUNCTION outbox_notify();
