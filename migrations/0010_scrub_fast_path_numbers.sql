-- The scrub's fast path, taken for what it was meant for.
--
-- 0009 sent a text to the guarded path (a subtransaction per attempt)
-- whenever it held an "e" and four digits anywhere, strings included.
-- LINE's ids and tokens are hexadecimal or base-32 ("...3e1234..."), so a
-- quarter of ordinary events took the slow path, at about three times the
-- cost. A JSON number starts the document or follows ":", "," or "[",
-- with optional whitespace, and its exponent follows its digits and
-- fraction directly; the guard now looks for a four-digit exponent only
-- there. A string that happens to look like one (":1e2345" in a message
-- text) still takes the guarded path, which is always correct. Anything
-- else is 0009 unchanged.
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
