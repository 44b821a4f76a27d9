-- 0004's guard, plus: once a row has had an attempt, the request its
-- retry key names stays the same and the key's age stays on record.
-- LINE asks that a retry be the same request as the first ("Don't change
-- the content or the recipient"), and forgets a key after 24 hours, so
-- - channel_id and endpoint change after an attempt only with a new key
--   (a key reused on another channel's or endpoint's request is a new
--   request LINE may refuse or send), and
-- - first_attempt_at, which the sender reads to stop retrying a key LINE
--   may have forgotten, is never cleared or moved later without a new
--   key: an operator's "reset the attempts" would otherwise let a key
--   older than 24 hours be sent again, and LINE would deliver it twice.
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
    ELSIF OLD.first_attempt_at IS NOT NULL THEN
        IF NEW.body::text IS DISTINCT FROM OLD.body::text AND NEW.scrubbed_at IS NULL THEN
            RAISE EXCEPTION 'outbox %: body changes after an attempt only with a new retry_key', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.channel_id IS DISTINCT FROM OLD.channel_id OR NEW.endpoint IS DISTINCT FROM OLD.endpoint THEN
            RAISE EXCEPTION 'outbox %: channel_id and endpoint change after an attempt only with a new retry_key', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.first_attempt_at IS NULL OR NEW.first_attempt_at > OLD.first_attempt_at THEN
            RAISE EXCEPTION 'outbox %: first_attempt_at dates the retry key; it is cleared or moved later only with a new retry_key', OLD.id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
