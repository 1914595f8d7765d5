-- The operator console's queue filters by priority as well as by category; like the other
-- queue indexes, this one returns a filtered page already in due order (an index range scan).
CREATE INDEX idx_support_tickets_queue_priority ON support_tickets (priority, sla_next_due_at, id)
    WHERE status IN ('open', 'in_progress', 'pending');

-- The staff conversation list filters escalated conversations, newest activity first.
CREATE INDEX idx_conversations_escalated_activity ON conversations
    ((coalesce(last_message_at, created_at)) DESC)
    WHERE archived_at IS NULL AND escalated_at IS NOT NULL;
