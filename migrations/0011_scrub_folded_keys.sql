-- The unsend scrub finds the message under every key the worker reads as
-- the message.
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
--
-- Keeping a key the worker does not read as "id" or "type" would be a
-- leak, keeping too few is not: the kept keys are still matched by
-- lower() alone.
CREATE OR REPLACE FUNCTION linepipe_scrub_message_jsonb(raw jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN jsonb_typeof(raw) = 'object' THEN (
        SELECT coalesce(jsonb_object_agg(k, CASE
            WHEN lower(replace(k, 'ſ', 's')) <> 'message' THEN v
            WHEN jsonb_typeof(v) <> 'object' THEN '{}'::jsonb
            ELSE (SELECT coalesce(jsonb_object_agg(mk, mv), '{}'::jsonb) FROM jsonb_each(v) AS m(mk, mv)
                  WHERE lower(mk) IN ('id', 'type') AND jsonb_typeof(mv) IN ('string', 'number', 'boolean'))
            END), '{}'::jsonb)
        FROM jsonb_each(raw) AS e(k, v))
    ELSE raw END
$$;

-- Rows scrubbed before this migration are scrubbed again where they can
-- hold such a key, written as is or as a \u escape; the scrub leaves a
-- row it already scrubbed as it is.
UPDATE events SET raw = linepipe_scrub_event(raw, type, webhook_event_id, message_id)
WHERE scrubbed_at IS NOT NULL AND type <> 'unsend'
    AND (strpos(raw::text, 'ſ') > 0 OR strpos(lower(raw::text), '\u017f') > 0);

UPDATE dead_letters SET data = linepipe_scrub_dead_letter(data, message_id)
WHERE scrubbed_at IS NOT NULL
    AND (position(convert_to('ſ', 'UTF8') IN data) > 0 OR position('\x5c7530313766'::bytea IN data) > 0
        OR position('\x5c7530313746'::bytea IN data) > 0);
