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
-- the scrub reads it: as stored, or else from cleaned text (NUL escapes
-- gone, lone surrogate escapes replaced). The scrub keeps every key, a
-- message key with its value reduced, so its result holds a message key
-- exactly when the cleaned event does. An event Postgres cannot read even
-- then (a number beyond numeric, say) counts as holding one: the scrub
-- keeps only its envelope, as it does for such a message event.
CREATE OR REPLACE FUNCTION linepipe_event_holds_message(raw json) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    scrubbed json;
BEGIN
    BEGIN
        RETURN linepipe_holds_message_key(raw::jsonb);
    EXCEPTION WHEN OTHERS THEN
        NULL; -- read it as the scrub does
    END;
    scrubbed := linepipe_try_scrub_message(raw);
    RETURN scrubbed IS NULL OR linepipe_holds_message_key(scrubbed::jsonb);
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
