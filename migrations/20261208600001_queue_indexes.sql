-- Queue pages at every size (issue 18): each filter a queue offers reads an index that returns
-- its open tickets already in due order, so the plan does not hinge on the table's size or
-- statistics.
--
-- The unassigned queue had no such index. `assigned_to IS NULL` is an index condition on
-- idx_support_tickets_queue_assignee, but not an equality the planner can drop from the
-- index's order, so that index never returns rows in (sla_next_due_at, id) order for it. The
-- planner then chose between filtering idx_support_tickets_queue_due and a bitmap scan plus a
-- sort of every unassigned open ticket, by an estimate that multiplies the selectivity of
-- `assigned_to IS NULL` over all tickets (mostly closed and assigned) by that of the open
-- statuses: ten times too low, as open tickets are the unassigned ones. At 100,000 tickets it
-- chose the sort (p95 10.5 ms), at 1,000,000 the filtered scan (0.7 ms).
CREATE INDEX idx_support_tickets_queue_unassigned ON support_tickets (sla_next_due_at, id)
    WHERE assigned_to IS NULL AND status IN ('open', 'in_progress', 'pending');

-- Crisis tickets nobody holds (the shift's first look) and any other category's: the unassigned
-- queue by category, exact too, rather than a filter over the unassigned index that reads
-- five times the page when a category is a fifth of the queue.
CREATE INDEX idx_support_tickets_queue_unassigned_category
    ON support_tickets (category, sla_next_due_at, id)
    WHERE assigned_to IS NULL AND status IN ('open', 'in_progress', 'pending');

-- The language and tier filters (re-triage sets both), like category and priority.
CREATE INDEX idx_support_tickets_queue_language ON support_tickets (language, sla_next_due_at, id)
    WHERE status IN ('open', 'in_progress', 'pending');
CREATE INDEX idx_support_tickets_queue_tier ON support_tickets (escalation_tier, sla_next_due_at, id)
    WHERE status IN ('open', 'in_progress', 'pending');
