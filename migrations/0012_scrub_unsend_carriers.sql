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
--
-- Every unsend event is read once; a row is written, and marked
-- scrubbed, only where the scrub changes it. The scrub keeps the bytes as
-- sent when the event holds no message key at all, which is every unsend
-- LINE sends.
UPDATE events e SET raw = x.scrubbed, scrubbed_at = now()
FROM (SELECT id, linepipe_scrub_event(raw, type, webhook_event_id, message_id) AS scrubbed
      FROM events WHERE type = 'unsend' AND scrubbed_at IS NULL) x
WHERE e.id = x.id AND x.scrubbed::text IS DISTINCT FROM e.raw::text;
