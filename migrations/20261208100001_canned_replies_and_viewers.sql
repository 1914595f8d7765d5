-- Issue 18, the console fit for a crisis shift: canned replies and who is viewing a ticket.

-- Canned replies: texts staff insert into a reply, one language each, with placeholders
-- ({{name}}: the person's name or a neutral form; {{crisis_line}}: the configured crisis line).
-- Owned by the engine's `canned` module; supervisors and admins write them, everyone reads.
CREATE TABLE canned_replies (
    id          uuid         NOT NULL DEFAULT gen_random_uuid(),
    lang        char(2)      NOT NULL,
    title       varchar(80)  NOT NULL,
    body        text         NOT NULL,
    created_by  uuid,
    updated_by  uuid,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT pk_canned_replies PRIMARY KEY (id),
    CONSTRAINT chk_canned_replies_lang CHECK (lang IN ('ar', 'fr', 'en')),
    CONSTRAINT chk_canned_replies_title CHECK (length(btrim(title)) > 0),
    CONSTRAINT chk_canned_replies_body CHECK (length(btrim(body)) > 0 AND length(body) <= 4000),
    CONSTRAINT uq_canned_replies_lang_title UNIQUE (lang, title),
    CONSTRAINT fk_canned_replies_created_by FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT fk_canned_replies_updated_by FOREIGN KEY (updated_by) REFERENCES users (id) ON DELETE SET NULL
);

COMMENT ON TABLE canned_replies IS
    'Canned replies staff insert into a reply (placeholders {{name}} and {{crisis_line}}); written by supervisors and admins.';

-- Who has a ticket open in a console: short-lived marks, refreshed by a heartbeat and
-- ignored once older than the engine's expiry. Owned by the engine's `tickets` module.
CREATE TABLE ticket_viewers (
    ticket_id  uuid         NOT NULL,
    staff_id   uuid         NOT NULL,
    seen_at    timestamptz  NOT NULL,
    CONSTRAINT pk_ticket_viewers PRIMARY KEY (ticket_id, staff_id),
    CONSTRAINT fk_ticket_viewers_ticket FOREIGN KEY (ticket_id) REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT fk_ticket_viewers_staff FOREIGN KEY (staff_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX idx_ticket_viewers_seen_at ON ticket_viewers (seen_at);

COMMENT ON TABLE ticket_viewers IS
    'Which staff member has which ticket open (heartbeat marks; stale ones expire).';
