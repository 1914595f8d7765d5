-- E-mail the service sends (issue 22), owned by the engine's `mail` module.
--
-- Reply notices (a staff member answered while the person was away) are queued here and
-- delivered by the `mail` worker with retries and back-off; `dedupe_key` is unique, so a
-- notice is queued once whichever instance sees the reply first, and a delivery is claimed by
-- one worker only. A delivery that fails for good stays as a dead letter (status 'dead',
-- with its last error). Sign-in links are sent at once and never stored here: a link that
-- could not be delivered leaves a dead letter without the link.
CREATE TABLE mail_deliveries (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    kind            text        NOT NULL,
    recipient       text        NOT NULL,
    dedupe_key      text        NOT NULL,
    user_id         uuid,
    conversation_id uuid,
    language        text        NOT NULL DEFAULT 'ar',
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT mail_deliveries_pkey PRIMARY KEY (id),
    CONSTRAINT mail_deliveries_dedupe_key_key UNIQUE (dedupe_key),
    CONSTRAINT mail_deliveries_kind_check CHECK (kind IN ('magic_link', 'reply_notice')),
    CONSTRAINT mail_deliveries_status_check CHECK (status IN ('pending', 'sending', 'sent', 'dead')),
    CONSTRAINT mail_deliveries_language_check CHECK (language IN ('ar', 'fr', 'en')),
    CONSTRAINT mail_deliveries_attempts_check CHECK (attempts >= 0),
    CONSTRAINT mail_deliveries_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT mail_deliveries_conversation_id_fkey
        FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE
);

CREATE INDEX mail_deliveries_due_idx ON mail_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_deliveries_conversation_idx ON mail_deliveries (conversation_id, created_at);

COMMENT ON TABLE mail_deliveries IS
    'E-mail deliveries: queued reply notices and dead letters of every kind (never a sign-in link).';

-- Until when a session counts as connected: its live stream sets it on opening and on every
-- session check (every 10 s) a little ahead. A staff reply committed before it is seen live;
-- after it, the person is away and may get a notice.
ALTER TABLE user_sessions ADD COLUMN live_until timestamptz;
