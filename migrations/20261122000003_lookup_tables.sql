-- Reference (lookup) tables. Rows come from seeds/reference.sql, which is
-- idempotent; the schema only fixes their shape. Every lookup row carries its
-- label in the three service languages.
--
-- Codes are natural keys (varchar) so that core tables hold readable values
-- ('urgent', 'open') and the application can match on them directly.

CREATE TABLE conversation_modes (
    code        varchar(20)  NOT NULL,
    name_ar     varchar(100) NOT NULL,
    name_fr     varchar(100) NOT NULL,
    name_en     varchar(100) NOT NULL,
    description text,
    is_active   boolean      NOT NULL DEFAULT true,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT conversation_modes_pkey PRIMARY KEY (code)
);

CREATE TABLE conversation_statuses (
    code        varchar(20)  NOT NULL,
    name_ar     varchar(100) NOT NULL,
    name_fr     varchar(100) NOT NULL,
    name_en     varchar(100) NOT NULL,
    description text,
    is_terminal boolean      NOT NULL DEFAULT false,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT conversation_statuses_pkey PRIMARY KEY (code)
);

CREATE TABLE ticket_categories (
    code        varchar(30)  NOT NULL,
    name_ar     varchar(100) NOT NULL,
    name_fr     varchar(100) NOT NULL,
    name_en     varchar(100) NOT NULL,
    description text,
    icon        varchar(50),
    sort_order  integer      NOT NULL DEFAULT 0,
    is_active   boolean      NOT NULL DEFAULT true,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT ticket_categories_pkey PRIMARY KEY (code)
);

CREATE TABLE ticket_priorities (
    code                   varchar(20)  NOT NULL,
    name_ar                varchar(100) NOT NULL,
    name_fr                varchar(100) NOT NULL,
    name_en                varchar(100) NOT NULL,
    level                  integer      NOT NULL,
    color                  varchar(7)   NOT NULL,
    -- Documented resolution target in hours. Kept for readers of the original
    -- documentation; the SLA trigger uses the minute columns below.
    sla_hours              integer      NOT NULL,
    first_response_minutes integer      NOT NULL,
    resolution_minutes     integer      NOT NULL,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT ticket_priorities_pkey PRIMARY KEY (code),
    CONSTRAINT ticket_priorities_level_key UNIQUE (level),
    CONSTRAINT chk_ticket_priorities_level CHECK (level > 0),
    CONSTRAINT chk_ticket_priorities_color CHECK (color ~ '^#[0-9A-Fa-f]{6}$'),
    CONSTRAINT chk_ticket_priorities_targets_positive
        CHECK (first_response_minutes > 0 AND resolution_minutes > 0),
    CONSTRAINT chk_ticket_priorities_response_before_resolution
        CHECK (first_response_minutes <= resolution_minutes),
    -- sla_hours is the hour-granular view of resolution_minutes; this keeps the
    -- two from drifting apart when a target is edited.
    CONSTRAINT chk_ticket_priorities_sla_hours
        CHECK (sla_hours = ceil(resolution_minutes / 60.0))
);

COMMENT ON COLUMN ticket_priorities.sla_hours IS
    'Resolution target in hours (documented); always ceil(resolution_minutes / 60).';
COMMENT ON COLUMN ticket_priorities.first_response_minutes IS
    'First-response SLA target: first_response_due_at = created_at + this many minutes.';
COMMENT ON COLUMN ticket_priorities.resolution_minutes IS
    'Resolution SLA target: resolution_due_at (= sla_due_at) = created_at + this many minutes.';

CREATE TABLE ticket_statuses (
    code        varchar(20)  NOT NULL,
    name_ar     varchar(100) NOT NULL,
    name_fr     varchar(100) NOT NULL,
    name_en     varchar(100) NOT NULL,
    -- is_open: the ticket still needs staff work and its SLA clock runs.
    is_open     boolean      NOT NULL DEFAULT true,
    -- is_terminal: no further transition is expected.
    is_terminal boolean      NOT NULL DEFAULT false,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT ticket_statuses_pkey PRIMARY KEY (code),
    CONSTRAINT chk_ticket_statuses_open_not_terminal CHECK (NOT (is_open AND is_terminal))
);
