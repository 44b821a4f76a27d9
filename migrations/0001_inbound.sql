-- Inbound pipeline: channels, every event as LINE sent it, the messages
-- and chat state derived from them, unsend tombstones, the webhook log and
-- the dead letters an operator inspects.

-- One row per LINE channel (Messaging API channel) linepipe serves.
-- channel_secret signs webhooks and, with channel_id, issues stateless
-- access tokens. access_token, when set, is a static token the sender uses
-- instead of issuing one.
CREATE TABLE channels (
    channel_id     text PRIMARY KEY CHECK (channel_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    channel_secret text NOT NULL CHECK (channel_secret <> ''),
    access_token   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Every webhook event, exactly once, with its raw JSON as LINE sent it
-- (type json keeps the bytes, field order and unknown fields). Scrubbed
-- rows had their message content removed because the sender unsent it.
CREATE TABLE events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_event_id text NOT NULL UNIQUE,
    channel_id       text NOT NULL,
    destination      text NOT NULL DEFAULT '',
    type             text NOT NULL,
    mode             text,
    source_type      text,
    user_id          text,
    group_id         text,
    room_id          text,
    message_id       text,
    event_time       timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    is_redelivery    boolean NOT NULL DEFAULT false,
    webhook_id       text,
    raw              json NOT NULL,
    scrubbed_at      timestamptz,
    stored_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_message_idx ON events (channel_id, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX events_received_at_idx ON events (received_at);
CREATE INDEX events_type_idx ON events (channel_id, type, event_time);

-- The current content of each message users sent. A messageEdited event
-- replaces text and content only when it is newer (content_at), so edits
-- arriving out of order converge on the latest. Unsend deletes the row.
CREATE TABLE messages (
    channel_id       text NOT NULL,
    message_id       text NOT NULL,
    type             text NOT NULL,
    source_type      text,
    user_id          text,
    group_id         text,
    room_id          text,
    sent_at          timestamptz NOT NULL,
    text             text,
    content          json NOT NULL,
    content_at       timestamptz NOT NULL,
    edited           boolean NOT NULL DEFAULT false,
    webhook_event_id text NOT NULL,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, message_id)
);
CREATE INDEX messages_user_idx ON messages (channel_id, user_id, sent_at);

-- Tombstones: messages their senders unsent. A copy of the message that
-- arrives after its unsend (redelivery, reordering) is stored scrubbed.
CREATE TABLE unsent_messages (
    channel_id       text NOT NULL,
    message_id       text NOT NULL,
    unsent_at        timestamptz NOT NULL,
    webhook_event_id text NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, message_id)
);

-- Who follows the account. Last writer wins by event time (state_at),
-- never by arrival, because replicas process events out of order.
CREATE TABLE followers (
    channel_id text NOT NULL,
    user_id    text NOT NULL,
    following  boolean NOT NULL,
    state_at   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);

-- Group chats and rooms the account is in (join/leave), last writer wins.
CREATE TABLE chats (
    channel_id text NOT NULL,
    chat_id    text NOT NULL,
    chat_type  text NOT NULL,
    joined     boolean NOT NULL,
    state_at   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, chat_id)
);

-- Members of those chats (memberJoined/memberLeft), last writer wins.
CREATE TABLE chat_members (
    channel_id text NOT NULL,
    chat_id    text NOT NULL,
    user_id    text NOT NULL,
    member     boolean NOT NULL,
    state_at   timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, chat_id, user_id)
);

-- One row per accepted webhook, as LINE's guideline asks: sender IP,
-- time, method, path and status. No body content.
CREATE TABLE webhook_log (
    webhook_id  text PRIMARY KEY,
    channel_id  text NOT NULL,
    remote_ip   text NOT NULL,
    received_at timestamptz NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL,
    status      integer NOT NULL,
    event_count integer NOT NULL,
    redelivery  boolean NOT NULL DEFAULT false,
    stored_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_log_received_at_idx ON webhook_log (received_at);

-- Stream messages the worker could not store after every delivery
-- attempt: kept with their bytes and the error, never silently dropped.
-- An unsend scrubs the data of a dead letter that holds its message.
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject          text NOT NULL,
    stream_seq       bigint NOT NULL,
    deliveries       integer NOT NULL,
    channel_id       text,
    webhook_event_id text,
    message_id       text,
    headers          json NOT NULL DEFAULT '{}',
    data             bytea NOT NULL,
    error            text NOT NULL,
    failed_at        timestamptz NOT NULL DEFAULT now(),
    scrubbed_at      timestamptz
);
CREATE INDEX dead_letters_message_idx ON dead_letters (channel_id, message_id) WHERE message_id IS NOT NULL;

-- What linepipe keeps of a message event whose message was unsent: the
-- event with its message object reduced to id and type. Content, quote
-- token and mark-as-read token are gone; every other field stays.
CREATE FUNCTION linepipe_scrub_message(raw json) RETURNS json
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN json_typeof(raw) = 'object' AND (raw::jsonb) ? 'message' THEN
            jsonb_set(raw::jsonb, '{message}',
                jsonb_strip_nulls(jsonb_build_object(
                    'id',   raw::jsonb -> 'message' -> 'id',
                    'type', raw::jsonb -> 'message' -> 'type')))::json
        ELSE raw
    END
$$;
