-- The unsend scrub without a subtransaction when none is needed.
--
-- 0004's scrub runs each attempt in an exception block, a subtransaction
-- per row, so that an event Postgres cannot read as jsonb never aborts the
-- unsend's transaction. That block cost about 35 µs of a 55 µs scrub, and
-- an unsend's stored events are scrubbed in the worker's batch
-- transaction, where it made the scrub a tenth of the worker's Postgres
-- time.
--
-- The cast json -> jsonb, on a value the json type already accepted,
-- fails only on:
--   * a \u escape jsonb cannot hold (\u0000, a lone surrogate): any text
--     holding "\u" takes the guarded path;
--   * a number numeric cannot hold: more than 131,072 digits before the
--     point or 16,383 after it (digits plus a negative exponent), or, on
--     Postgres 13 and older, an exponent beyond ±1,000. A text of at most
--     15,000 bytes whose exponents have at most three digits holds no such
--     number: 15,000 digits and an exponent of 999 stay within both.
-- Anything else takes 0004's path unchanged, with its exception blocks;
-- on the fast path the result is the one 0004's first attempt gives.
CREATE OR REPLACE FUNCTION linepipe_try_scrub_message(raw json) RETURNS json
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    t text := raw::text;
    j jsonb;
    s jsonb;
BEGIN
    IF octet_length(t) <= 15000 AND strpos(t, E'\\u') = 0 AND t !~ '[eE][-+]?[0-9]{4}' THEN
        j := t::jsonb;
        s := linepipe_scrub_message_jsonb(j);
        IF s = j THEN
            RETURN raw; -- nothing to scrub: the bytes stay as sent
        END IF;
        RETURN s::json;
    END IF;
    BEGIN
        j := raw::jsonb;
        s := linepipe_scrub_message_jsonb(j);
        IF s = j THEN
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

-- 0004's wrapper was LANGUAGE sql, but json_build_object is only stable,
-- so Postgres never inlined it into the IMMUTABLE function's callers and
-- planned its body again in every statement that scrubbed: a fixed cost
-- per unsend batch. In PL/pgSQL the plan is kept for the session.
CREATE OR REPLACE FUNCTION linepipe_scrub_event(raw json, typ text, webhook_event_id text, message_id text)
RETURNS json LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN coalesce(linepipe_try_scrub_message(raw),
        json_build_object('type', typ, 'webhookEventId', webhook_event_id,
            'message', json_build_object('id', message_id)));
END $$;
