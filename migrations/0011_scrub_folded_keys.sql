-- The unsend scrub finds the message under every key the worker reads as
-- the message, and in every copy of it.
--
-- The worker decodes events as Go's encoding/json does, matching keys
-- with Unicode simple case folding: besides any ASCII case, "ſ" (U+017F,
-- long s) is an "s", so an event whose key is "meſſage" is read as a
-- message event, and its text is stored. 0004's scrub matched keys with
-- lower(), which leaves "ſ" alone: it kept such a key's value, and the
-- text stayed readable in the events row (and in a dead letter) after
-- the unsend. Of the letters of "message" and the message keys the scrub
-- keeps ("id", "type"), only "s" has a folding partner outside ASCII
-- (the other one in Unicode, the Kelvin sign, is a "k"); pkg/store's
-- TestScrubMatchesKeysAsTheWorkerDoes checks this against Go's tables.
-- Keeping a key the worker does not read as "id" or "type" would be a
-- leak, keeping too few is not: the kept keys are still matched by
-- lower() alone.
--
-- The json type keeps every copy of a repeated key, jsonb only the last.
-- When the last copy of the message held nothing to scrub, 0009's scrub
-- found nothing changed and kept the bytes as sent, earlier copies and
-- their text included. The bytes now stay as sent only when the event
-- holds no key that could be the message at all; otherwise the scrubbed
-- value is written, which holds one copy of each key.

-- Whether a key is one the worker reads as the message.
CREATE OR REPLACE FUNCTION linepipe_is_message_key(k text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT lower(replace(k, 'ſ', 's')) = 'message'
$$;

-- Whether an event holds a key that could be the message.
CREATE OR REPLACE FUNCTION linepipe_holds_message_key(raw jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN jsonb_typeof(raw) = 'object'
        THEN EXISTS (SELECT 1 FROM jsonb_object_keys(raw) AS k WHERE linepipe_is_message_key(k))
        ELSE false END
$$;

CREATE OR REPLACE FUNCTION linepipe_scrub_message_jsonb(raw jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN jsonb_typeof(raw) = 'object' THEN (
        SELECT coalesce(jsonb_object_agg(k, CASE
            WHEN NOT linepipe_is_message_key(k) THEN v
            WHEN jsonb_typeof(v) <> 'object' THEN '{}'::jsonb
            ELSE (SELECT coalesce(jsonb_object_agg(mk, mv), '{}'::jsonb) FROM jsonb_each(v) AS m(mk, mv)
                  WHERE lower(mk) IN ('id', 'type') AND jsonb_typeof(mv) IN ('string', 'number', 'boolean'))
            END), '{}'::jsonb)
        FROM jsonb_each(raw) AS e(k, v))
    ELSE raw END
$$;

-- 0010's function, but for when the bytes may stay as sent.
CREATE OR REPLACE FUNCTION linepipe_try_scrub_message(raw json) RETURNS json
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    t text := raw::text;
    j jsonb;
    s jsonb;
BEGIN
    IF octet_length(t) <= 15000 AND strpos(t, E'\\u') = 0
        AND t !~ '(^|[,:]|\[)\s*-?[0-9]+(\.[0-9]+)?[eE][-+]?[0-9]{4}' THEN
        j := t::jsonb;
        s := linepipe_scrub_message_jsonb(j);
        IF s = j AND NOT linepipe_holds_message_key(j) THEN
            RETURN raw; -- no message at all: the bytes stay as sent
        END IF;
        RETURN s::json;
    END IF;
    BEGIN
        j := raw::jsonb;
        s := linepipe_scrub_message_jsonb(j);
        IF s = j AND NOT linepipe_holds_message_key(j) THEN
            RETURN raw;
        END IF;
        RETURN s::json;
    EXCEPTION WHEN OTHERS THEN
        NULL; -- fall through to the cleaned text
    END;
    BEGIN
        -- chr(1) cannot appear unescaped in valid JSON, so it safely
        -- stands in for an escaped backslash while real escapes are
        -- rewritten: NUL escapes go, surrogate escapes become U+FFFD.
        t := replace(t, '\\', chr(1));
        t := regexp_replace(t, '\\u0000', '', 'g');
        t := regexp_replace(t, '\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}', '\\ufffd', 'g');
        t := replace(t, chr(1), '\\');
        RETURN linepipe_scrub_message_jsonb(t::jsonb)::json;
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
END $$;

-- Every row scrubbed before this migration is scrubbed again, and written
-- where the scrub now gives something else: a folded key's or an earlier
-- copy's text goes, and a row whose bytes the old scrub kept is written in
-- jsonb's form. A row the old scrub rebuilt from jsonb comes out as it is.
UPDATE events e SET raw = x.scrubbed
FROM (SELECT id, linepipe_scrub_event(raw, type, webhook_event_id, message_id) AS scrubbed
      FROM events WHERE scrubbed_at IS NOT NULL AND type <> 'unsend') x
WHERE e.id = x.id AND x.scrubbed::text IS DISTINCT FROM e.raw::text;

UPDATE dead_letters d SET data = x.scrubbed
FROM (SELECT id, linepipe_scrub_dead_letter(data, message_id) AS scrubbed
      FROM dead_letters WHERE scrubbed_at IS NOT NULL) x
WHERE d.id = x.id AND x.scrubbed IS DISTINCT FROM d.data;
