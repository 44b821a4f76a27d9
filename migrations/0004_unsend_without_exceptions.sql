-- Unsend without exceptions, dead letters decided by the message alone,
-- and an outbox guard that cannot be toggled around.

-- The scrub must never fail on the data it scrubs. The json type accepts
-- what jsonb (and every json operator) refuses: a \u0000 escape, a lone
-- surrogate (\ud800), a number beyond numeric's range. The first attempt
-- is the plain jsonb scrub; if Postgres cannot read the event, escapes it
-- cannot hold are neutralised in the text and the scrub is tried again;
-- if that fails too, the result is NULL and the caller substitutes what it
-- knows from its own columns. Each attempt runs in its own exception
-- block, so a failure never aborts the unsend's transaction.
CREATE OR REPLACE FUNCTION linepipe_try_scrub_message(raw json) RETURNS json
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    t text;
    j jsonb;
    s jsonb;
BEGIN
    BEGIN
        j := raw::jsonb;
        s := linepipe_scrub_message_jsonb(j);
        IF s = j THEN
            RETURN raw; -- nothing to scrub: the bytes stay as sent
        END IF;
        RETURN s::json;
    EXCEPTION WHEN OTHERS THEN
        NULL; -- fall through to the cleaned text
    END;
    BEGIN
        -- chr(1) cannot appear unescaped in valid JSON, so it safely
        -- stands in for an escaped backslash while real escapes are
        -- rewritten: NUL escapes go, surrogate escapes become U+FFFD.
        t := replace(raw::text, '\\', chr(1));
        t := regexp_replace(t, '\\u0000', '', 'g');
        t := regexp_replace(t, '\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}', '\\ufffd', 'g');
        t := replace(t, chr(1), '\\');
        RETURN linepipe_scrub_message_jsonb(t::jsonb)::json;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
END $$;

-- The scrub proper, on a value Postgres could read: the message object is
-- reduced to its id and type (when they are plain values); every other
-- field of the event stays. Keys are matched the way the worker's JSON
-- decoder matches them, ignoring case, so a "Message" or "TEXT" key the
-- worker read as the message cannot slip past the scrub.
CREATE OR REPLACE FUNCTION linepipe_scrub_message_jsonb(raw jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN jsonb_typeof(raw) = 'object' THEN (
        SELECT coalesce(jsonb_object_agg(k, CASE
            WHEN lower(k) <> 'message' THEN v
            WHEN jsonb_typeof(v) <> 'object' THEN '{}'::jsonb
            ELSE (SELECT coalesce(jsonb_object_agg(mk, mv), '{}'::jsonb) FROM jsonb_each(v) AS m(mk, mv)
                  WHERE lower(mk) IN ('id', 'type') AND jsonb_typeof(mv) IN ('string', 'number', 'boolean'))
            END), '{}'::jsonb)
        FROM jsonb_each(raw) AS e(k, v))
    ELSE raw END
$$;

-- Kept for callers of 0001's function: never fails, and falls back to an
-- object that holds nothing of the message.
CREATE OR REPLACE FUNCTION linepipe_scrub_message(raw json) RETURNS json
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(linepipe_try_scrub_message(raw), '{"message":{}}'::json)
$$;

-- A stored event whose raw JSON could not be scrubbed is replaced by its
-- envelope, rebuilt from the row's own columns.
CREATE OR REPLACE FUNCTION linepipe_scrub_event(raw json, typ text, webhook_event_id text, message_id text)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(linepipe_try_scrub_message(raw),
        json_build_object('type', typ, 'webhookEventId', webhook_event_id,
            'message', json_build_object('id', message_id)))
$$;

-- A dead letter's data is the stream message's bytes: not necessarily
-- UTF-8, not necessarily JSON. What cannot be read is replaced whole.
CREATE OR REPLACE FUNCTION linepipe_scrub_dead_letter(data bytea, message_id text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    scrubbed json;
BEGIN
    BEGIN
        scrubbed := linepipe_try_scrub_message(convert_from(data, 'UTF8')::json);
    EXCEPTION WHEN OTHERS THEN
        scrubbed := NULL;
    END;
    IF scrubbed IS NULL THEN
        scrubbed := json_build_object('message', json_build_object('id', message_id));
    END IF;
    RETURN convert_to(scrubbed::text, 'UTF8');
END $$;

-- A message's own failures, counted by the worker per event (its
-- webhookEventId, or the digest that stands in for one), not per
-- JetStream delivery: deliveries also count the redeliveries a Postgres
-- outage causes, and an outage must never dead-letter a good event. A
-- failure is recorded only when Postgres answered with an error that is
-- not outage-shaped, so during an outage nothing is counted at all. The
-- row goes when the event is stored or dead-lettered.
CREATE TABLE IF NOT EXISTS worker_failures (
    event_key      text PRIMARY KEY,
    failures       integer NOT NULL,
    last_error     text NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at timestamptz NOT NULL DEFAULT now()
);

-- How often the message failed through its own fault before it was
-- dead-lettered (deliveries, kept beside it, is JetStream's count).
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS failures integer;

-- 0002's guard, plus: once scrubbed, a row stays scrubbed. Clearing
-- scrubbed_at, or changing a scrubbed body, would let the two-step
-- "scrub, then unscrub" change a body after an attempt without a new key,
-- or bring an unsent message's text back.
CREATE OR REPLACE FUNCTION outbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.scrubbed_at IS NOT NULL AND NEW.scrubbed_at IS DISTINCT FROM OLD.scrubbed_at THEN
        RAISE EXCEPTION 'outbox %: scrubbed_at, once set, never changes', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.scrubbed_at IS NOT NULL AND NEW.body::text IS DISTINCT FROM OLD.body::text THEN
        RAISE EXCEPTION 'outbox %: a scrubbed body never changes', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
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
