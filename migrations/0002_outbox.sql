-- Outbound pipeline: the outbox an operator or the bot logic writes
-- messages into, the rate buckets every sender replica shares, and the log
-- of every call made to the LINE Platform. See docs/OUTBOX.md.

-- One row per Messaging API request to make. Sending is one INSERT:
--   INSERT INTO outbox (channel_id, endpoint, body)
--   VALUES ('<channel>', 'push', '{"to":"U...","messages":[...]}');
-- body is type json (not jsonb) so the exact bytes are kept and every
-- attempt of a row sends byte-identical requests, as LINE's retry key
-- requires ("Don't change the content or the recipient").
CREATE TABLE outbox (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id          text NOT NULL,
    -- reply, push, multicast, narrowcast or broadcast. Not constrained
    -- here: the sender fails an unknown endpoint with a readable error.
    endpoint            text NOT NULL,
    body                json NOT NULL,
    -- Sent as X-Line-Retry-Key on every attempt (never to reply). Changed
    -- only by the documented "new send" statement (see the trigger below).
    retry_key           uuid NOT NULL DEFAULT gen_random_uuid(),
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'in_flight', 'retrying', 'delivered', 'failed',
                         'expired', 'skipped', 'cancelled', 'uncertain')),
    -- The user message this row was derived from (e.g. an echo reply), so
    -- an unsend can scrub and cancel it.
    source_message_id   text,
    scrubbed_at         timestamptz,
    -- Never send after this instant. For reply rows left null the sender
    -- uses created_at + REPLY_TOKEN_TTL.
    not_after           timestamptz,
    -- The single user a push goes to, for the per-recipient cap and the
    -- followers check.
    recipient           text GENERATED ALWAYS AS
                        (CASE WHEN endpoint = 'push' THEN body ->> 'to' END) STORED,
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    last_attempt_at     timestamptz,
    last_status_code    integer,
    last_error          text,
    request_id          text,
    accepted_request_id text,
    sent_message_ids    text[],
    -- An attempt ended without an answer (timeout, network error, 5xx):
    -- LINE may have accepted it.
    maybe_delivered     boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    first_attempt_at    timestamptz,
    delivered_at        timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Lease: the claim that owns an in_flight row. claim_id is the fencing
    -- token every completion must match.
    claim_id            uuid,
    claimed_by          text,
    lease_until         timestamptz,
    -- The rate-limit slot the claim reserved for this attempt.
    send_at             timestamptz
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at, id) WHERE status IN ('pending', 'retrying');
CREATE INDEX outbox_lease_idx ON outbox (lease_until) WHERE status = 'in_flight';
CREATE INDEX outbox_source_idx ON outbox (channel_id, source_message_id) WHERE source_message_id IS NOT NULL;
CREATE INDEX outbox_status_idx ON outbox (status, finished_at);

-- A retry key is what makes a resend safe: changing it, or changing the
-- body behind it, after an attempt could deliver a message twice. The
-- trigger allows a new key only as a deliberate new send of a finished,
-- undelivered row (status back to pending, attempts and first_attempt_at
-- reset), and a body change after an attempt only as a scrub or together
-- with a new key.
CREATE FUNCTION outbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.retry_key IS DISTINCT FROM OLD.retry_key THEN
        IF OLD.status NOT IN ('failed', 'expired', 'skipped', 'cancelled', 'uncertain')
           OR NEW.status <> 'pending' OR NEW.attempts <> 0 OR NEW.first_attempt_at IS NOT NULL THEN
            RAISE EXCEPTION 'outbox %: retry_key changes only with a new send of a failed, expired, skipped, cancelled or uncertain row (status pending, attempts 0, first_attempt_at NULL)', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.body::text IS DISTINCT FROM OLD.body::text AND OLD.first_attempt_at IS NOT NULL
          AND NEW.scrubbed_at IS NULL THEN
        RAISE EXCEPTION 'outbox %: body changes after an attempt only with a new retry_key', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER outbox_guard BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_guard();

-- GCRA rate buckets shared by every sender replica: one row per channel
-- and bucket ("push", "multicast", ... or "to:<userId>" for the
-- per-recipient cap). tat is the theoretical arrival time of the next
-- request; a claim locks the row, reserves slots and moves tat on.
CREATE TABLE outbox_rate (
    channel_id text NOT NULL,
    bucket     text NOT NULL,
    tat        timestamptz NOT NULL,
    PRIMARY KEY (channel_id, bucket)
);

-- Every call to the LINE Platform, as LINE's guideline asks ("Save logs"):
-- request id, time, method, endpoint and status, plus what an operator
-- needs to follow one outbox row. Never a token or message text; error is
-- LINE's error body.
CREATE TABLE api_log (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    called_at           timestamptz NOT NULL,
    method              text NOT NULL,
    endpoint            text NOT NULL,
    status              integer NOT NULL, -- 0: no HTTP answer (timeout, network)
    request_id          text,
    accepted_request_id text,
    channel_id          text,
    outbox_id           bigint,
    retry_key           uuid,
    duration_ms         double precision NOT NULL,
    error               text
);
CREATE INDEX api_log_outbox_idx ON api_log (outbox_id) WHERE outbox_id IS NOT NULL;
CREATE INDEX api_log_called_at_idx ON api_log (called_at);
CREATE INDEX api_log_request_idx ON api_log (request_id) WHERE request_id IS NOT NULL;
