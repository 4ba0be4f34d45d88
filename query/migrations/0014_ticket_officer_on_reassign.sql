-- A ticket's officer is the one named by its latest `assigned` event, even
-- when that event names none: a ticket passed to another unit without an
-- officer is held by nobody yet, not by the officer it had before.
--
-- The view that folds the events is replaced, as in schema 9: the new one is
-- created before the old one is dropped, so no insert reaches the events
-- without reaching the state (an insert folded by both changes nothing: every
-- aggregate is idempotent, and the old view's officer never wins over a later
-- assignment of the new one). Tickets stored before get the assignments that
-- named no officer from the raw events.

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "feedback_state_mv2"}} {{onCluster}} TO {{local "feedback_state"}} AS
SELECT
    subject AS ticket_id,
    minIfState(time, type = 'received') AS received_at_s,
    argMaxIfState(unit, time, type = 'received') AS unit_s,
    argMaxIfState(unit, time, unit != '') AS holder_unit_s,
    argMaxIfState(channel, time, type = 'received') AS channel_s,
    argMaxIfState(category, time, type = 'received') AS category_s,
    argMaxIfState(due_at, time, due_at > toDateTime(0)) AS due_at_s,
    argMaxIfState(lat, time, type = 'received') AS lat_s,
    argMaxIfState(lon, time, type = 'received') AS lon_s,
    argMaxIfState(citizen_ref, time, type = 'received') AS citizen_ref_s,
    argMaxIfState(officer, time, type = 'assigned' OR officer != '') AS officer_s,
    maxIfState(time, type = 'resolved') AS resolved_at_s,
    argMaxIfState(outcome, time, type = 'resolved') AS outcome_s,
    maxIfState(time, type = 'closed') AS closed_at_s,
    argMaxIfState(rating, time, type = 'rated') AS rating_s,
    maxIfState(time, type = 'rated') AS rated_at_s,
    maxState(time) AS last_event_at_s,
    argMaxState(type, time) AS last_type_s
FROM {{local "feedback_events"}}
GROUP BY subject;

DROP TABLE IF EXISTS {{local "feedback_state_mv"}} {{onCluster}};

INSERT INTO {{.DB}}.feedback_state (ticket_id, officer_s)
SELECT
    subject,
    argMaxIfState(officer, time, type = 'assigned' OR officer != '')
FROM {{.DB}}.feedback_events
WHERE type = 'assigned' OR officer != ''
GROUP BY subject
HAVING countIf(type = 'assigned' AND officer = '') > 0;
