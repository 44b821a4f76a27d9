-- Retention covers message content like every other kind of row: the
-- retention row 'message_content' says how long content is kept, counted
-- from when linepipe recorded the message (message_content.created_at, as
-- events count from received_at). An expired row's object is deleted from
-- the bucket and then the row itself. See the README's operator section.
--
-- The sender's content fetcher enforces it, not the worker's janitor: only
-- the sender's NATS user may delete objects in the content bucket
-- (deploy/nats/nats.conf). One fetcher replica at a time runs a round,
-- under an advisory lock, every RETENTION_INTERVAL.
--
-- A round is two steps, each crash-safe on its own:
--   1. expire: rows past their keep become 'expired' (committed), so no
--      row claims 'stored' once its object may be gone;
--   2. purge: each 'expired' row is locked, its object deleted (a missing
--      object is fine), then the row deleted. A crash between the two
--      leaves the row 'expired', and the next round finishes it; a round
--      completes only when no 'expired' row is left, so no object
--      outlives its row.
-- A row a fetcher holds ('processing') or whose unsend is in progress
-- ('unsent') is skipped until it settles; every other status expires.
ALTER TABLE retention DROP CONSTRAINT retention_table_name_check;
ALTER TABLE retention ADD CONSTRAINT retention_table_name_check CHECK (table_name IN
    ('events', 'webhook_log', 'api_log', 'outbox', 'dead_letters', 'unsent_messages', 'outbox_rate',
     'message_content'));
-- The same keep as events by default: content is kept as long as the
-- event that brought it.
INSERT INTO retention (table_name, keep) VALUES ('message_content', interval '90 days')
ON CONFLICT (table_name) DO NOTHING;

-- expired: past its retention; its object is being deleted, then the row.
ALTER TABLE message_content DROP CONSTRAINT message_content_status_check;
ALTER TABLE message_content ADD CONSTRAINT message_content_status_check CHECK (status IN
    ('pending', 'processing', 'stored', 'missing', 'failed', 'external', 'unsent', 'deleted', 'expired'));

-- A round finds rows past their keep by created_at; 'expired' rows are
-- found by message_content_status_idx.
CREATE INDEX message_content_created_at_idx ON message_content (created_at);

-- The fetcher reads the keep, and deletes the rows it expired.
GRANT SELECT ON retention TO linepipe_sender;
GRANT DELETE ON message_content TO linepipe_sender;
