-- Re-triage (issue 18): a ticket's language, which supervisors correct alongside priority,
-- category and tier. Set at creation from the conversation's language and changed only by
-- re-triage; NULL when no language is known (a staff-opened ticket without a conversation).
-- The person's conversation keeps its own language: re-triage never changes what they see.
ALTER TABLE support_tickets
    ADD COLUMN language char(2),
    ADD CONSTRAINT chk_support_tickets_language CHECK (language IN ('ar', 'fr', 'en'));

COMMENT ON COLUMN support_tickets.language IS
    'Language the ticket is worked in (ar, fr, en): the conversation''s at creation, then as re-triaged.';

UPDATE support_tickets t
   SET language = c.lang
  FROM conversations c
 WHERE c.id = t.conversation_id AND c.lang IN ('ar', 'fr', 'en');
