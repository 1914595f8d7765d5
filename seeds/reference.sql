-- Reference data for the lookup tables, in Arabic, French and English.
--
-- Idempotent: every row is an upsert on its code, so the script can run any
-- number of times (it is applied after the migrations, as one script) and a
-- re-run brings edited labels and SLA targets back to these values. Rows added
-- by hand with other codes are left alone.

-- Conversation modes ---------------------------------------------------------
INSERT INTO conversation_modes (code, name_ar, name_fr, name_en, description, is_active) VALUES
    ('AUTO',    'تلقائي',        'Automatique',          'Automatic',
     'The engine decides for each message between the knowledge base and human support.', true),
    ('RAG',     'قاعدة المعرفة', 'Base de connaissances', 'Knowledge base',
     'Answers drawn from reviewed documents of the knowledge base.', true),
    ('SUPPORT', 'الدعم البشري',  'Assistance humaine',    'Human support',
     'The conversation is handled by the support team.', true)
ON CONFLICT (code) DO UPDATE SET
    name_ar = EXCLUDED.name_ar,
    name_fr = EXCLUDED.name_fr,
    name_en = EXCLUDED.name_en,
    description = EXCLUDED.description,
    is_active = EXCLUDED.is_active;

-- Conversation statuses -----------------------------------------------------
INSERT INTO conversation_statuses (code, name_ar, name_fr, name_en, description, is_terminal) VALUES
    ('active',    'نشطة',    'Active',    'Active',
     'The conversation is ongoing.', false),
    ('escalated', 'مُحالة إلى الدعم', 'Transmise au support', 'Escalated',
     'The conversation was handed over to the support team.', false),
    ('closed',    'مغلقة',   'Fermée',    'Closed',
     'The conversation has ended.', true),
    ('archived',  'مؤرشفة',  'Archivée',  'Archived',
     'The conversation was archived after a period of inactivity.', true)
ON CONFLICT (code) DO UPDATE SET
    name_ar = EXCLUDED.name_ar,
    name_fr = EXCLUDED.name_fr,
    name_en = EXCLUDED.name_en,
    description = EXCLUDED.description,
    is_terminal = EXCLUDED.is_terminal;

-- Ticket categories -----------------------------------------------------------
INSERT INTO ticket_categories (code, name_ar, name_fr, name_en, description, icon, sort_order, is_active) VALUES
    ('addiction',     'الإدمان',       'Addiction',     'Addiction',
     'Substance use and behavioural addictions.', 'pill', 1, true),
    ('mental_health', 'الصحة النفسية', 'Santé mentale', 'Mental health',
     'Anxiety, depression, stress and other mental-health concerns.', 'brain', 2, true),
    ('prevention',    'الوقاية',       'Prévention',    'Prevention',
     'Prevention and information for the person or their family.', 'shield', 3, true),
    ('resources',     'الموارد',       'Ressources',    'Resources',
     'Care centres, helplines and other services.', 'book-open', 4, true),
    ('crisis',        'أزمة',          'Crise',         'Crisis',
     'Immediate danger or acute distress: handled first.', 'alert-triangle', 5, true)
ON CONFLICT (code) DO UPDATE SET
    name_ar = EXCLUDED.name_ar,
    name_fr = EXCLUDED.name_fr,
    name_en = EXCLUDED.name_en,
    description = EXCLUDED.description,
    icon = EXCLUDED.icon,
    sort_order = EXCLUDED.sort_order,
    is_active = EXCLUDED.is_active;

-- Ticket priorities -----------------------------------------------------------
-- SLA targets: first response / resolution.
--   urgent   15 min /   4 h
--   high     60 min /  24 h
--   medium  240 min /  72 h
--   low    1440 min /   7 days
-- sla_hours is the documented resolution target in hours (= resolution_minutes / 60).
INSERT INTO ticket_priorities
    (code, name_ar, name_fr, name_en, level, color, sla_hours, first_response_minutes, resolution_minutes) VALUES
    ('low',    'منخفضة', 'Basse',   'Low',    1, '#00B894', 168, 1440, 10080),
    ('medium', 'متوسطة', 'Moyenne', 'Medium', 2, '#0984E3',  72,  240,  4320),
    ('high',   'عالية',  'Haute',   'High',   3, '#FD7E14',  24,   60,  1440),
    ('urgent', 'عاجلة',  'Urgente', 'Urgent', 4, '#D63031',   4,   15,   240)
ON CONFLICT (code) DO UPDATE SET
    name_ar = EXCLUDED.name_ar,
    name_fr = EXCLUDED.name_fr,
    name_en = EXCLUDED.name_en,
    level = EXCLUDED.level,
    color = EXCLUDED.color,
    sla_hours = EXCLUDED.sla_hours,
    first_response_minutes = EXCLUDED.first_response_minutes,
    resolution_minutes = EXCLUDED.resolution_minutes;

-- Ticket statuses -------------------------------------------------------------
-- is_open: staff work pending, SLA clock running. resolved is no longer open
-- but can still be reopened; closed is terminal.
INSERT INTO ticket_statuses (code, name_ar, name_fr, name_en, is_open, is_terminal) VALUES
    ('open',        'مفتوحة',        'Ouvert',     'Open',        true,  false),
    ('in_progress', 'قيد المعالجة',  'En cours',   'In progress', true,  false),
    ('pending',     'قيد الانتظار',  'En attente', 'Pending',     true,  false),
    ('resolved',    'تم الحل',       'Résolu',     'Resolved',    false, false),
    ('closed',      'مغلقة',         'Fermé',      'Closed',      false, true)
ON CONFLICT (code) DO UPDATE SET
    name_ar = EXCLUDED.name_ar,
    name_fr = EXCLUDED.name_fr,
    name_en = EXCLUDED.name_en,
    is_open = EXCLUDED.is_open,
    is_terminal = EXCLUDED.is_terminal;
