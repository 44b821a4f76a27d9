-- Day-two operations: dead-letter replay as a table operation, and
-- retention an operator sets with SQL. See the README's operator section.

-- Replay: an operator sets replay_requested_at; a worker replica claims the
-- row (FOR UPDATE SKIP LOCKED), stores its data through the normal path and
-- deletes the row. A failed replay clears replay_requested_at, keeps the new
-- error and counts the attempt.
ALTER TABLE dead_letters
    ADD COLUMN replay_requested_at timestamptz,
    ADD COLUMN replay_attempts     integer NOT NULL DEFAULT 0,
    ADD COLUMN replayed_at         timestamptz;
CREATE INDEX dead_letters_replay_idx ON dead_letters (replay_requested_at, id)
    WHERE replay_requested_at IS NOT NULL;
CREATE INDEX dead_letters_failed_at_idx ON dead_letters (failed_at);

-- Retention: how long each kind of row is kept. A worker replica deletes
-- older rows every RETENTION_INTERVAL, in small batches. Delete a row of
-- this table to keep that kind of row forever.
--   events          events.received_at
--   webhook_log     webhook_log.received_at
--   api_log         api_log.called_at
--   outbox          finished rows only (delivered, failed, expired, skipped,
--                   cancelled, uncertain), by finished_at
--   dead_letters    dead_letters.failed_at, unless a replay is requested
--   unsent_messages unsend tombstones, by recorded_at
--   outbox_rate     per-recipient rate buckets ("to:<userId>") whose tat
--                   (next free slot) is older than keep: an idle bucket
--                   means the same as a missing one
-- outbox_rate is kept at least an hour, events and unsent_messages at
-- least 7 days: the events table is what makes a redelivered event a no-op
-- (LINE does not disclose how long it redelivers; JetStream may hold an
-- event through a week-long Postgres outage), and a tombstone must outlive
-- every copy of its message that may still arrive.
CREATE TABLE retention (
    table_name text PRIMARY KEY CHECK (table_name IN
               ('events', 'webhook_log', 'api_log', 'outbox', 'dead_letters', 'unsent_messages', 'outbox_rate')),
    keep       interval NOT NULL CHECK (keep > interval '0'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_redelivery_horizon CHECK
        (table_name NOT IN ('events', 'unsent_messages') OR keep >= interval '7 days'),
    -- A bucket in use has a tat near now; an hour is far beyond any lease.
    CONSTRAINT retention_rate_bucket_in_use CHECK
        (table_name <> 'outbox_rate' OR keep >= interval '1 hour')
);
INSERT INTO retention (table_name, keep) VALUES
    ('events',          interval '90 days'),
    ('webhook_log',     interval '90 days'),
    ('api_log',         interval '90 days'),
    ('outbox',          interval '30 days'),
    ('dead_letters',    interval '90 days'),
    ('unsent_messages', interval '30 days'),
    ('outbox_rate',     interval '1 day')
ON CONFLICT (table_name) DO NOTHING;

-- The janitor finds expired tombstones by recorded_at.
CREATE INDEX unsent_messages_recorded_at_idx ON unsent_messages (recorded_at);
