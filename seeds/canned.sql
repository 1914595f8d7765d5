-- Starter canned replies, three per language (loaded with the reference data; idempotent:
-- a reply staff have edited or removed is not brought back under the same title).
-- Placeholders: {{name}} (the person's name, or a neutral form) and {{crisis_line}}.
INSERT INTO canned_replies (lang, title, body) VALUES
('ar', 'ترحيب', 'مرحبا {{name}}، أنا هنا معك. خذ وقتك واحكِ لي ما الذي يحدث معك الآن.'),
('ar', 'خط الأزمات', 'مرحبا {{name}}، سلامتك هي الأهم الآن. إذا كنت في خطر أو تفكر في إيذاء نفسك، اتصل فورا بخط الأزمات {{crisis_line}} (مجاني، على مدار الساعة). أنا باقٍ معك هنا.'),
('ar', 'متابعة', 'مرحبا {{name}}، أردت أن أطمئن عليك. كيف حالك اليوم؟ نحن هنا متى احتجت إلينا.'),
('fr', 'Accueil', 'Bonjour {{name}}, je suis là avec vous. Prenez votre temps et dites-moi ce qui se passe pour vous en ce moment.'),
('fr', 'Ligne de crise', 'Bonjour {{name}}, votre sécurité passe avant tout. Si vous êtes en danger ou pensez à vous faire du mal, appelez tout de suite la ligne de crise au {{crisis_line}} (gratuite, 24 h/24). Je reste avec vous ici.'),
('fr', 'Suivi', 'Bonjour {{name}}, je voulais prendre de vos nouvelles. Comment allez-vous aujourd''hui ? Nous sommes là quand vous en avez besoin.'),
('en', 'Welcome', 'Hello {{name}}, I am here with you. Take your time and tell me what is happening for you right now.'),
('en', 'Crisis line', 'Hello {{name}}, your safety comes first. If you are in danger or thinking of harming yourself, call the crisis line on {{crisis_line}} now (free, 24/7). I am staying here with you.'),
('en', 'Follow-up', 'Hello {{name}}, I wanted to check in on you. How are you doing today? We are here whenever you need us.')
ON CONFLICT (lang, title) DO NOTHING;
