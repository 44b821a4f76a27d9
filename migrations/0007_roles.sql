-- Least privilege: one NOLOGIN group role per service, granted exactly
-- what that service's statements need in this schema. Deployments create
-- one login user per service as a member of its role (`worker migrate`
-- does it from *_DB_PASSWORD; see the README). The schema's owner runs
-- migrations and nothing else.
--
-- Roles are cluster-wide and several schemas (one per test) may migrate
-- at once, so each is created only when absent and a concurrent creation
-- is not an error. Grants are per schema: this runs with search_path set
-- to the schema being migrated.
--
-- A table added later must state its grants in its own migration, in the
-- same form: GRANT <privileges> ON <table> TO <the roles whose statements
-- touch it>; nothing is granted by default.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['linepipe_ingest', 'linepipe_worker', 'linepipe_sender'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created concurrently by another migration
            END;
        END IF;
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO linepipe_ingest, linepipe_worker, linepipe_sender',
                   current_schema());
END $$;

-- worker and sender are ready only once the schema they were built for
-- is migrated: they read the migrations table (pkg/store.SchemaCheck).
GRANT SELECT ON linepipe_migrations TO linepipe_worker, linepipe_sender;

-- ingest verifies signatures: it reads channel secrets, nothing else.
GRANT SELECT ON channels TO linepipe_ingest;

-- worker stores inbound events, derives messages and chat state, honours
-- unsend, writes dead letters, and its bot handlers enqueue replies.
GRANT SELECT ON channels TO linepipe_worker;
GRANT SELECT, INSERT, UPDATE ON events TO linepipe_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON messages TO linepipe_worker;
GRANT SELECT, INSERT ON unsent_messages TO linepipe_worker;
GRANT SELECT, INSERT, UPDATE ON followers, chats, chat_members TO linepipe_worker;
GRANT SELECT, INSERT ON webhook_log TO linepipe_worker;
GRANT SELECT, INSERT, UPDATE ON dead_letters TO linepipe_worker;
-- 0004: a message's own failures, counted until it is stored or dead-lettered.
GRANT SELECT, INSERT, UPDATE, DELETE ON worker_failures TO linepipe_worker;
-- outbox: insert replies; an unsend cancels and scrubs rows derived from
-- the message, so it reads their state and writes only those columns.
GRANT INSERT ON outbox TO linepipe_worker;
GRANT UPDATE (body, status, finished_at, scrubbed_at) ON outbox TO linepipe_worker;
-- 0005: the worker's janitor deletes rows past their retention (found by
-- ctid, so it reads the tables it prunes), its gauges read outbox and
-- dead-letter depth, and dead-letter replay deletes replayed letters.
GRANT SELECT ON retention TO linepipe_worker;
GRANT SELECT, DELETE ON outbox, api_log, outbox_rate TO linepipe_worker;
GRANT DELETE ON events, webhook_log, dead_letters, unsent_messages TO linepipe_worker;

-- sender drains the outbox: claims, completes and reschedules rows, keeps
-- the shared rate buckets, logs every call, reads credentials and
-- followers, and seeds an environment-configured channel when absent.
GRANT SELECT, INSERT ON channels TO linepipe_sender;
GRANT SELECT ON followers TO linepipe_sender;
GRANT SELECT, UPDATE ON outbox TO linepipe_sender;
GRANT SELECT, INSERT, UPDATE ON outbox_rate TO linepipe_sender;
GRANT INSERT ON api_log TO linepipe_sender;

-- message_content (0006): the worker records a fetch in the transaction
-- that stores a media message and marks it on unsend; the sender's
-- content fetcher claims, fetches, finishes and deletes what it stored.
GRANT SELECT, INSERT, UPDATE ON message_content TO linepipe_worker;
GRANT SELECT, UPDATE ON message_content TO linepipe_sender;
