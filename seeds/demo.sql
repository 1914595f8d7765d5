-- Demo data set: a few people writing in Arabic, French and English, what the assistant
-- answered, and the tickets that humans took over. Loaded by `amal-engine seed --demo` after the
-- reference data, in one transaction. Idempotent: fixed ids, and rows that fire numbering
-- triggers are inserted only when absent, so a re-seed never consumes a ticket number.
-- Staff accounts with passwords are created by the engine's staff module, not here.

-- People (end users; password_hash '!' = no password sign-in, magic link only).
INSERT INTO users (id, email, password_hash, name, locale, consent_data_storage, consent_timestamp, is_verified, created_at)
VALUES
    ('00000000-0000-4000-8000-000000000101', 'amina.demo@example.dz',  '!', 'Amina',  'ar-DZ', true, now() - interval '20 days', true, now() - interval '20 days'),
    ('00000000-0000-4000-8000-000000000102', 'yacine.demo@example.dz', '!', 'Yacine', 'fr-FR', true, now() - interval '12 days', true, now() - interval '12 days'),
    ('00000000-0000-4000-8000-000000000103', 'sarah.demo@example.dz',  '!', 'Sarah',  'en-US', true, now() - interval '6 days',  true, now() - interval '6 days'),
    ('00000000-0000-4000-8000-000000000104', 'karim.demo@example.dz',  '!', 'Karim',  'ar-DZ', true, now() - interval '2 days',  true, now() - interval '2 days'),
    ('00000000-0000-4000-8000-000000000105', 'lina.demo@example.dz',   '!', 'Lina',   'fr-FR', true, now() - interval '1 day',   true, now() - interval '1 day')
ON CONFLICT (id) DO NOTHING;

-- Demo staff (no password yet: the staff module sets demo passwords when it seeds accounts).
INSERT INTO users (id, email, password_hash, name, locale, staff_role, is_verified)
VALUES
    ('00000000-0000-4000-8000-000000000201', 'agent.demo@amal.example',      '!', 'Nadia (agent)',        'fr-FR', 'agent',      true),
    ('00000000-0000-4000-8000-000000000202', 'supervisor.demo@amal.example', '!', 'Samir (supervisor)',   'ar-DZ', 'supervisor', true),
    ('00000000-0000-4000-8000-000000000203', 'admin.demo@amal.example',      '!', 'Leila (admin)',        'en-US', 'admin',      true)
ON CONFLICT (id) DO NOTHING;

INSERT INTO user_preferences (user_id, language_preference, theme)
VALUES
    ('00000000-0000-4000-8000-000000000101', 'ar-DZ', 'system'),
    ('00000000-0000-4000-8000-000000000201', 'fr-FR', 'dark'),
    ('00000000-0000-4000-8000-000000000202', 'ar-DZ', 'dark'),
    ('00000000-0000-4000-8000-000000000203', 'en-US', 'high-contrast')
ON CONFLICT (user_id) DO NOTHING;

-- Conversations.
INSERT INTO conversations (id, user_id, title, mode, status, language, created_at, escalated_at)
VALUES
    ('00000000-0000-4000-8000-000000000301', '00000000-0000-4000-8000-000000000101', 'النوم والقلق',             'AUTO', 'active',    'ar-DZ', now() - interval '3 hours',    NULL),
    ('00000000-0000-4000-8000-000000000302', '00000000-0000-4000-8000-000000000102', 'Arrêter le cannabis',      'AUTO', 'escalated', 'fr-FR', now() - interval '50 minutes', now() - interval '45 minutes'),
    ('00000000-0000-4000-8000-000000000303', '00000000-0000-4000-8000-000000000103', 'Exam stress',              'AUTO', 'active',    'en-US', now() - interval '30 minutes', NULL),
    ('00000000-0000-4000-8000-000000000304', '00000000-0000-4000-8000-000000000104', 'أزمة',                     'AUTO', 'escalated', 'ar-DZ', now() - interval '8 minutes',  now() - interval '8 minutes'),
    ('00000000-0000-4000-8000-000000000305', '00000000-0000-4000-8000-000000000105', 'Mon frère et les jeux',    'AUTO', 'escalated', 'fr-FR', now() - interval '5 hours',    now() - interval '5 hours'),
    ('00000000-0000-4000-8000-000000000306', '00000000-0000-4000-8000-000000000103', 'Sleep after a loss',       'AUTO', 'closed',    'en-US', now() - interval '5 days',     NULL)
ON CONFLICT (id) DO NOTHING;

-- Messages (the message_count trigger counts them as they are inserted).
INSERT INTO messages (id, conversation_id, role, content, created_at, tokens_used, processing_time_ms)
VALUES
    ('00000000-0000-4000-8000-000000000401', '00000000-0000-4000-8000-000000000301', 'user',
     'ما نقدرش نرقد في الليل، نبقى نخمم بزاف. واش ندير؟', now() - interval '3 hours', NULL, NULL),
    ('00000000-0000-4000-8000-000000000402', '00000000-0000-4000-8000-000000000301', 'assistant',
     'صعوبة النوم مع كثرة التفكير أمر شائع. جرّب أن تحافظ على موعد ثابت للنوم والاستيقاظ، وأن تبتعد عن الهاتف قبل النوم بساعة، وأن تكتب ما يشغل بالك في ورقة قبل أن تنام. إذا استمر الأمر أكثر من أسبوعين، تحدّث مع طبيب.',
     now() - interval '3 hours' + interval '2 seconds', 96, 38),
    ('00000000-0000-4000-8000-000000000403', '00000000-0000-4000-8000-000000000302', 'user',
     'Je fume du cannabis tous les soirs depuis deux ans et je veux arrêter, mais je veux parler à un conseiller.', now() - interval '50 minutes', NULL, NULL),
    ('00000000-0000-4000-8000-000000000404', '00000000-0000-4000-8000-000000000302', 'assistant',
     'Merci de nous écrire. Un conseiller de l''équipe va vous répondre ici très bientôt.', now() - interval '50 minutes' + interval '1 second', 24, 12),
    ('00000000-0000-4000-8000-000000000405', '00000000-0000-4000-8000-000000000303', 'user',
     'My exams start next week and I can''t focus, this exam is killing me.', now() - interval '30 minutes', NULL, NULL),
    ('00000000-0000-4000-8000-000000000406', '00000000-0000-4000-8000-000000000303', 'assistant',
     'Exam stress is very common. Short study blocks with breaks, regular sleep and meals, and talking to someone you trust can help. If the stress feels overwhelming, our team is here too.',
     now() - interval '30 minutes' + interval '2 seconds', 61, 41),
    ('00000000-0000-4000-8000-000000000407', '00000000-0000-4000-8000-000000000304', 'user',
     'ما بقاش عندي سبب باش نعيش', now() - interval '8 minutes', NULL, NULL),
    ('00000000-0000-4000-8000-000000000408', '00000000-0000-4000-8000-000000000304', 'assistant',
     'نحن هنا معك الآن. إذا كنت في خطر فوري، اتصل بالرقم {{EMERGENCY_NUMBER}} أو بخط الأزمات {{CRISIS_LINE}}. أحد أعضاء فريقنا سيتواصل معك حالاً.',
     now() - interval '8 minutes' + interval '1 second', NULL, 3),
    ('00000000-0000-4000-8000-000000000409', '00000000-0000-4000-8000-000000000305', 'user',
     'Mon frère parie en ligne tous les jours, il a perdu beaucoup d''argent. Comment l''aider ?', now() - interval '5 hours', NULL, NULL),
    ('00000000-0000-4000-8000-000000000410', '00000000-0000-4000-8000-000000000306', 'user',
     'Since my father died I barely sleep.', now() - interval '5 days', NULL, NULL),
    ('00000000-0000-4000-8000-000000000411', '00000000-0000-4000-8000-000000000306', 'assistant',
     'I am sorry for your loss. Grief often disturbs sleep for a while. Gentle routines, daylight in the morning and talking about your father with people close to you can help.',
     now() - interval '5 days' + interval '2 seconds', 58, 35)
ON CONFLICT (id) DO NOTHING;

-- Decisions behind the assistant's turns.
INSERT INTO decision_logs (id, conversation_id, message_id, decision, reason, reason_code, reason_ar, reason_fr, reason_en, evidence, confidence, model_used, created_at)
VALUES
    ('00000000-0000-4000-8000-000000000501', '00000000-0000-4000-8000-000000000301', '00000000-0000-4000-8000-000000000401', 'rag',
     'مصادر معتمدة عن النوم', 'rag_confident', 'مصادر معتمدة عن النوم', 'Sources approuvées sur le sommeil', 'Approved sources about sleep',
     '{"chunks": []}', 0.82, 'offline-extractive', now() - interval '3 hours'),
    ('00000000-0000-4000-8000-000000000502', '00000000-0000-4000-8000-000000000302', '00000000-0000-4000-8000-000000000403', 'support',
     'طلب صريح للتحدث مع شخص', 'human_requested', 'طلب صريح للتحدث مع شخص', 'Demande explicite de parler à quelqu''un', 'Explicit request for a human',
     '{"pattern": "parler à un conseiller"}', 1.0, NULL, now() - interval '50 minutes'),
    ('00000000-0000-4000-8000-000000000503', '00000000-0000-4000-8000-000000000303', '00000000-0000-4000-8000-000000000405', 'rag',
     'مصادر معتمدة عن ضغط الامتحانات', 'rag_confident', 'مصادر معتمدة عن ضغط الامتحانات', 'Sources approuvées sur le stress des examens', 'Approved sources about exam stress',
     '{"chunks": []}', 0.77, 'offline-extractive', now() - interval '30 minutes'),
    ('00000000-0000-4000-8000-000000000504', '00000000-0000-4000-8000-000000000304', '00000000-0000-4000-8000-000000000407', 'support',
     'بوابة الأزمات: أفكار انتحارية', 'crisis_suicidal_ideation', 'بوابة الأزمات: أفكار انتحارية', 'Porte de crise : idées suicidaires', 'Crisis gate: suicidal ideation',
     '{"rule": "ar.suicidal_ideation.no_reason_to_live"}', 1.0, NULL, now() - interval '8 minutes'),
    ('00000000-0000-4000-8000-000000000505', '00000000-0000-4000-8000-000000000305', '00000000-0000-4000-8000-000000000409', 'support',
     'لا توجد مصادر كافية', 'low_confidence', 'لا توجد مصادر كافية', 'Pas de source suffisante', 'No approved source above the threshold',
     '{"chunks": []}', 0.31, 'offline-extractive', now() - interval '5 hours')
ON CONFLICT (id) DO NOTHING;

-- Tickets: numbers and SLA due dates come from the database's triggers.
INSERT INTO support_tickets (id, conversation_id, user_id, subject, category, priority, status, assigned_to, assigned_at, created_at)
SELECT v.id, v.conversation_id, v.user_id, v.subject, v.category, v.priority, v.status, v.assigned_to, v.assigned_at, v.created_at
FROM (VALUES
    ('00000000-0000-4000-8000-000000000601'::uuid, '00000000-0000-4000-8000-000000000304'::uuid, '00000000-0000-4000-8000-000000000104'::uuid,
     'أزمة: ما بقاش عندي سبب باش نعيش', 'crisis', 'urgent', 'open', NULL::uuid, NULL::timestamptz, now() - interval '8 minutes'),
    ('00000000-0000-4000-8000-000000000602'::uuid, '00000000-0000-4000-8000-000000000302'::uuid, '00000000-0000-4000-8000-000000000102'::uuid,
     'Arrêter le cannabis — demande un conseiller', 'addiction', 'medium', 'in_progress', '00000000-0000-4000-8000-000000000201'::uuid, now() - interval '40 minutes', now() - interval '50 minutes'),
    ('00000000-0000-4000-8000-000000000603'::uuid, '00000000-0000-4000-8000-000000000305'::uuid, '00000000-0000-4000-8000-000000000105'::uuid,
     'Mon frère et les jeux d''argent', 'addiction', 'high', 'open', NULL::uuid, NULL::timestamptz, now() - interval '5 hours'),
    ('00000000-0000-4000-8000-000000000604'::uuid, NULL::uuid, '00000000-0000-4000-8000-000000000101'::uuid,
     'Suivi : sommeil et anxiété', 'mental_health', 'low', 'pending', '00000000-0000-4000-8000-000000000201'::uuid, now() - interval '2 hours', now() - interval '2 hours')
) AS v(id, conversation_id, user_id, subject, category, priority, status, assigned_to, assigned_at, created_at)
WHERE NOT EXISTS (SELECT 1 FROM support_tickets t WHERE t.id = v.id)
ORDER BY v.created_at;

INSERT INTO ticket_comments (id, ticket_id, user_id, content, is_internal, created_at)
VALUES
    ('00000000-0000-4000-8000-000000000701', '00000000-0000-4000-8000-000000000602', '00000000-0000-4000-8000-000000000201',
     'Bonjour Yacine, je suis Nadia. Merci de nous avoir écrit : on peut faire un plan ensemble, à votre rythme.', false, now() - interval '38 minutes'),
    ('00000000-0000-4000-8000-000000000702', '00000000-0000-4000-8000-000000000602', '00000000-0000-4000-8000-000000000201',
     'Usage quotidien depuis 2 ans, motivé. Proposer orientation CST si accord.', true, now() - interval '37 minutes')
ON CONFLICT (id) DO NOTHING;

INSERT INTO audit_logs (id, user_id, action, resource_type, resource_id, details, created_at)
VALUES
    ('00000000-0000-4000-8000-000000000801', '00000000-0000-4000-8000-000000000201', 'ticket.take', 'support_ticket',
     '00000000-0000-4000-8000-000000000602', '{"source": "demo"}', now() - interval '40 minutes'),
    ('00000000-0000-4000-8000-000000000802', '00000000-0000-4000-8000-000000000201', 'ticket.comment', 'support_ticket',
     '00000000-0000-4000-8000-000000000602', '{"internal": false, "source": "demo"}', now() - interval '38 minutes')
ON CONFLICT (id) DO NOTHING;
