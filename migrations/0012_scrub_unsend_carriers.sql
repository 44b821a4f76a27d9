-- An unsend event that carries a message is stored without it.
--
-- As LINE sends it, an unsend event names the message it takes back
-- (unsend.messageId) and carries nothing of it. An event of type unsend
-- that also held a message object, under any key the worker reads as
-- "message", kept that object's text in its own events row: the unsend
-- scrub finds the message's events by message id, and left unsends out.
-- The worker now scrubs such an unsend in its own transaction
-- (pkg/worker/unsendbody.go); this scrubs the unsends stored before.
-- Dead letters needed nothing: an unsend's own dead letter is scrubbed by
-- the unsend it applies.

-- Whether an event holds a key the worker reads as the message, read as
-- linepipe_try_scrub_message reads it: as stored, or else from cleaned
-- text (NUL escapes gone, lone surrogate escapes replaced). An event
-- Postgres cannot read even then (a number beyond numeric, say) counts as
-- holding one: the scrub then keeps only its envelope, as it does for
-- such a message event.
CREATE OR REPLACE FUNCTION linepipe_event_holds_message(raw json) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    t text := raw::text;
BEGIN
    BEGIN
        RETURN linepipe_holds_message_key(t::jsonb);
    EXCEPTION WHEN OTHERS THEN
        NULL; -- fall through to the cleaned text
    END;
    BEGIN
        t := replace(t, '\\', chr(1));
        t := regexp_replace(t, '\\u0000', '', 'g');
        t := regexp_replace(t, '\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}', '\\ufffd', 'g');
        t := replace(t, chr(1), '\\');
        RETURN linepipe_holds_message_key(t::jsonb);
    EXCEPTION WHEN OTHERS THEN
        RETURN true;
    END;
END $$;

-- Every unsend event is read once, its bytes first tested as the worker
-- tests them (a backslash, a long s, or a "message" that does not start
-- "messageId"), which no unsend as LINE sends it passes; an unsend that
-- holds a message key is scrubbed and marked. Every other unsend keeps
-- its bytes as sent.
UPDATE events e SET raw = linepipe_scrub_event(e.raw, e.type, e.webhook_event_id, e.message_id), scrubbed_at = now()
WHERE e.type = 'unsend' AND e.scrubbed_at IS NULL
  AND (strpos(e.raw::text, '\') > 0 OR strpos(e.raw::text, 'ſ') > 0 OR e.raw::text ~* 'message(?!id")')
  AND linepipe_event_holds_message(e.raw);
