-- Message content: the bytes of images, video, audio and files users
-- send. A webhook carries only the message id; the bytes stay at LINE
-- (GET https://api-data.line.me/v2/bot/message/{id}/content) for a
-- limited, undisclosed time. The worker records one row here in the
-- transaction that stores the message event, so no fetch is ever only in
-- memory; the fetcher (a role of the sender) downloads the bytes into the
-- JetStream Object Store bucket CONTENT_BUCKET under <channel>/<message>.
-- See README "Message content".
CREATE TABLE message_content (
    channel_id      text NOT NULL,
    message_id      text NOT NULL,
    -- The message type: image, video, audio or file.
    message_type    text NOT NULL,
    -- pending:    due for a fetch (or a transcoding poll) at next_attempt_at
    -- processing: a fetcher holds it until lease_until (claim_id fences it)
    -- stored:     the object is in the bucket; size and sha256 describe it
    -- missing:    LINE answered 404 (or 410): there is nothing to fetch
    -- failed:     LINE refused it for good, transcoding failed, it is
    --             larger than CONTENT_MAX_BYTES, or attempts ran out
    -- external:   contentProvider.type "external": the URLs are kept, the
    --             bytes live with the sender's provider and are not fetched
    -- unsent:     the user unsent it; the object is being deleted
    -- deleted:    unsent and the object is gone
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                    ('pending', 'processing', 'stored', 'missing', 'failed',
                     'external', 'unsent', 'deleted')),
    -- LINE's Content-Type header, the stored size and its SHA-256 (hex).
    content_type    text,
    size            bigint,
    sha256          text,
    -- The file message's fileName and fileSize, as the webhook said.
    file_name       text,
    file_size       bigint,
    -- contentProvider.originalContentUrl / previewImageUrl when external.
    original_url    text,
    preview_url     text,
    -- Last transcoding status LINE reported for video or audio
    -- (processing, succeeded, failed); a pending row with 'processing'
    -- polls the transcoding endpoint before it downloads.
    transcoding     text,
    attempts        integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Lease, as in the outbox: claim_id is the fencing token every
    -- completion must match.
    claim_id        uuid,
    claimed_by      text,
    lease_until     timestamptz,
    webhook_event_id text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    stored_at       timestamptz,
    unsent_at       timestamptz,
    deleted_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, message_id)
);
-- What a fetcher claims: due fetches, unsent objects to delete, and
-- leases of dead fetchers.
CREATE INDEX message_content_due_idx ON message_content (next_attempt_at)
    WHERE status IN ('pending', 'unsent');
CREATE INDEX message_content_lease_idx ON message_content (lease_until)
    WHERE status = 'processing';
CREATE INDEX message_content_status_idx ON message_content (status, updated_at);
