-- Who is on shift (issue 19): staff profiles (languages, tier, capacity, on-call), presence with
-- a heartbeat and its history, routing decisions with their reasons, offers, and alerts to
-- on-call staff.
--
-- Owners: `presence` writes staff_profiles, staff_presence and staff_presence_history;
-- `routing` writes ticket_routing, ticket_offers and staff_alerts.

-- What routing needs to know of a staff member. No row: the defaults (the account's locale's
-- language, T1, capacity 5, not on call), see `presence::profile`.
CREATE TABLE staff_profiles (
    user_id    uuid        NOT NULL,
    languages  varchar(2)[] NOT NULL,
    tier       varchar(10) NOT NULL DEFAULT 'T1',
    capacity   integer     NOT NULL DEFAULT 5,
    on_call    boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT staff_profiles_pkey PRIMARY KEY (user_id),
    CONSTRAINT staff_profiles_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT chk_staff_profiles_languages
        CHECK (languages <@ ARRAY['ar', 'fr', 'en']::varchar(2)[]),
    CONSTRAINT chk_staff_profiles_tier CHECK (tier IN ('T1', 'T2', 'T3', 'manager')),
    CONSTRAINT chk_staff_profiles_capacity CHECK (capacity BETWEEN 0 AND 100)
);

COMMENT ON COLUMN staff_profiles.capacity IS
    'Open tickets routing may give the member at once (0: never routed to).';

-- The current presence. No row: offline. A presence whose heartbeat is older than the
-- configured timeout counts as offline (a killed console), and the sweeper records it so.
CREATE TABLE staff_presence (
    user_id      uuid        NOT NULL,
    status       varchar(10) NOT NULL,
    since        timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    CONSTRAINT staff_presence_pkey PRIMARY KEY (user_id),
    CONSTRAINT staff_presence_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT chk_staff_presence_status CHECK (status IN ('online', 'away', 'offline'))
);

CREATE INDEX idx_staff_presence_live ON staff_presence (heartbeat_at) WHERE status <> 'offline';

-- Every presence period, for statistics (staffed hours per language): the languages are those
-- of the profile when the period began. One open period (ended_at NULL) per member.
CREATE TABLE staff_presence_history (
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    user_id    uuid        NOT NULL,
    status     varchar(10) NOT NULL,
    languages  varchar(2)[] NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    cause      varchar(20) NOT NULL,
    CONSTRAINT staff_presence_history_pkey PRIMARY KEY (id),
    CONSTRAINT staff_presence_history_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT chk_staff_presence_history_status CHECK (status IN ('online', 'away', 'offline')),
    CONSTRAINT chk_staff_presence_history_period CHECK (ended_at IS NULL OR ended_at >= started_at),
    CONSTRAINT chk_staff_presence_history_cause
        CHECK (cause IN ('self', 'admin', 'console', 'idle', 'heartbeat_expired'))
);

CREATE UNIQUE INDEX uq_staff_presence_history_open ON staff_presence_history (user_id)
    WHERE ended_at IS NULL;
CREATE INDEX idx_staff_presence_history_time ON staff_presence_history (started_at);

-- Every routing decision with its reason: who was considered and why not.
CREATE TABLE ticket_routing (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    ticket_id   uuid        NOT NULL,
    decided_at  timestamptz NOT NULL,
    mode        varchar(10) NOT NULL,
    outcome     varchar(10) NOT NULL,
    staff_id    uuid,
    language    varchar(2)  NOT NULL,
    tier        varchar(10) NOT NULL,
    crisis      boolean     NOT NULL,
    considered  jsonb       NOT NULL,
    CONSTRAINT ticket_routing_pkey PRIMARY KEY (id),
    CONSTRAINT ticket_routing_ticket_id_fkey FOREIGN KEY (ticket_id)
        REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT ticket_routing_staff_id_fkey FOREIGN KEY (staff_id) REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT chk_ticket_routing_mode CHECK (mode IN ('off', 'assign', 'offer')),
    CONSTRAINT chk_ticket_routing_outcome CHECK (outcome IN ('assigned', 'offered', 'queued', 'nobody')),
    CONSTRAINT chk_ticket_routing_considered CHECK (jsonb_typeof(considered) = 'array')
);

CREATE INDEX idx_ticket_routing_ticket ON ticket_routing (ticket_id, decided_at);
CREATE INDEX idx_ticket_routing_time ON ticket_routing (decided_at);

-- Offers (mode offer): the member accepts or declines before expires_at; then the next one is
-- asked. At most one pending offer per ticket.
CREATE TABLE ticket_offers (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    ticket_id   uuid        NOT NULL,
    staff_id    uuid        NOT NULL,
    offered_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    status      varchar(10) NOT NULL DEFAULT 'pending',
    answered_at timestamptz,
    CONSTRAINT ticket_offers_pkey PRIMARY KEY (id),
    CONSTRAINT ticket_offers_ticket_id_fkey FOREIGN KEY (ticket_id)
        REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT ticket_offers_staff_id_fkey FOREIGN KEY (staff_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT chk_ticket_offers_status
        CHECK (status IN ('pending', 'accepted', 'declined', 'expired', 'withdrawn')),
    CONSTRAINT chk_ticket_offers_window CHECK (expires_at > offered_at),
    CONSTRAINT chk_ticket_offers_answer CHECK ((status = 'pending') = (answered_at IS NULL))
);

CREATE UNIQUE INDEX uq_ticket_offers_pending ON ticket_offers (ticket_id) WHERE status = 'pending';
CREATE INDEX idx_ticket_offers_expiry ON ticket_offers (expires_at) WHERE status = 'pending';
CREATE INDEX idx_ticket_offers_staff ON ticket_offers (staff_id) WHERE status = 'pending';

-- Alerts for on-call staff (a ticket that found nobody online): the console shows them as a
-- banner and rings the bell until seen.
CREATE TABLE staff_alerts (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    staff_id   uuid        NOT NULL,
    ticket_id  uuid,
    kind       varchar(20) NOT NULL,
    crisis     boolean     NOT NULL,
    created_at timestamptz NOT NULL,
    seen_at    timestamptz,
    CONSTRAINT staff_alerts_pkey PRIMARY KEY (id),
    CONSTRAINT staff_alerts_staff_id_fkey FOREIGN KEY (staff_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT staff_alerts_ticket_id_fkey FOREIGN KEY (ticket_id)
        REFERENCES support_tickets (id) ON DELETE CASCADE,
    CONSTRAINT chk_staff_alerts_kind CHECK (kind IN ('nobody_online'))
);

CREATE INDEX idx_staff_alerts_unseen ON staff_alerts (staff_id, created_at) WHERE seen_at IS NULL;
