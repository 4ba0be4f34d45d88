-- Current state of each entity, folded from its events by materialized views
-- into AggregatingMergeTree tables. Every aggregate is idempotent (argMax, min,
-- max, uniqExact): an event delivered twice, or events arriving in any order,
-- fold to the same state — the state as of the latest event time. The views
-- `dossiers`, `tickets` and `camera_status` (0004) give one row per entity.

CREATE TABLE IF NOT EXISTS {{local "dossier_state"}} {{onCluster}} (
    dossier_id String,
    received_at_s AggregateFunction(minIf, DateTime, UInt8),
    unit_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    holder_unit_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    procedure_code_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    procedure_name_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    field_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    service_level_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    channel_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    applicant_kind_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    applicant_ref_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    due_at_s AggregateFunction(argMaxIf, DateTime, DateTime, UInt8),
    first_due_at_s AggregateFunction(argMinIf, DateTime, DateTime, UInt8),
    officer_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    resolved_at_s AggregateFunction(maxIf, DateTime, UInt8),
    outcome_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    e_result_s AggregateFunction(maxIf, UInt8, UInt8),
    returned_at_s AggregateFunction(maxIf, DateTime, UInt8),
    withdrawn_at_s AggregateFunction(maxIf, DateTime, UInt8),
    supplements_s AggregateFunction(uniqExactIf, String, String, UInt8),
    apology_s AggregateFunction(max, UInt8),
    synced_s AggregateFunction(max, UInt8),
    digitized_s AggregateFunction(max, UInt8),
    reused_s AggregateFunction(max, UInt32),
    fee_paid_s AggregateFunction(max, UInt8),
    paid_online_s AggregateFunction(max, UInt8),
    last_event_at_s AggregateFunction(max, DateTime),
    last_type_s AggregateFunction(argMax, String, DateTime),
    events_s AggregateFunction(uniqExact, String, String)
) ENGINE = {{engine "AggregatingMergeTree()" "dossier_state"}}
ORDER BY dossier_id;

{{distributed "dossier_state" "cityHash64(dossier_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "dossier_state_mv"}} {{onCluster}} TO {{local "dossier_state"}} AS
SELECT
    subject AS dossier_id,
    minIfState(time, type = 'received') AS received_at_s,
    argMaxIfState(unit, time, type = 'received') AS unit_s,
    argMaxIfState(unit, time, unit != '') AS holder_unit_s,
    argMaxIfState(procedure_code, time, type = 'received') AS procedure_code_s,
    argMaxIfState(procedure_name, time, type = 'received') AS procedure_name_s,
    argMaxIfState(field, time, type = 'received') AS field_s,
    argMaxIfState(service_level, time, type = 'received') AS service_level_s,
    argMaxIfState(channel, time, type = 'received') AS channel_s,
    argMaxIfState(applicant_kind, time, type = 'received') AS applicant_kind_s,
    argMaxIfState(applicant_ref, time, type = 'received') AS applicant_ref_s,
    argMaxIfState(due_at, time, due_at > toDateTime(0)) AS due_at_s,
    argMinIfState(due_at, time, type = 'received' AND due_at > toDateTime(0)) AS first_due_at_s,
    argMaxIfState(officer, time, officer != '') AS officer_s,
    maxIfState(time, type = 'resolved') AS resolved_at_s,
    argMaxIfState(outcome, time, type = 'resolved') AS outcome_s,
    maxIfState(e_result, type = 'resolved') AS e_result_s,
    maxIfState(time, type = 'returned') AS returned_at_s,
    maxIfState(time, type = 'withdrawn') AS withdrawn_at_s,
    uniqExactIfState(source, id, type = 'supplement_requested') AS supplements_s,
    maxState(toUInt8(type = 'apology_issued')) AS apology_s,
    maxState(toUInt8(type = 'synced' AND portal = 'national')) AS synced_s,
    maxState(toUInt8(type = 'digitized')) AS digitized_s,
    maxState(reused) AS reused_s,
    maxState(toUInt8(type = 'paid' OR fee_paid_online = 1)) AS fee_paid_s,
    maxState(toUInt8((type = 'paid' AND method = 'online') OR fee_paid_online = 1)) AS paid_online_s,
    maxState(time) AS last_event_at_s,
    argMaxState(type, time) AS last_type_s,
    uniqExactState(source, id) AS events_s
FROM {{local "dossier_events"}}
GROUP BY subject;

CREATE TABLE IF NOT EXISTS {{local "feedback_state"}} {{onCluster}} (
    ticket_id String,
    received_at_s AggregateFunction(minIf, DateTime, UInt8),
    unit_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    holder_unit_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    channel_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    category_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    due_at_s AggregateFunction(argMaxIf, DateTime, DateTime, UInt8),
    lat_s AggregateFunction(argMaxIf, Float64, DateTime, UInt8),
    lon_s AggregateFunction(argMaxIf, Float64, DateTime, UInt8),
    citizen_ref_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    officer_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    resolved_at_s AggregateFunction(maxIf, DateTime, UInt8),
    outcome_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    closed_at_s AggregateFunction(maxIf, DateTime, UInt8),
    rating_s AggregateFunction(argMaxIf, UInt8, DateTime, UInt8),
    rated_at_s AggregateFunction(maxIf, DateTime, UInt8),
    last_event_at_s AggregateFunction(max, DateTime),
    last_type_s AggregateFunction(argMax, String, DateTime)
) ENGINE = {{engine "AggregatingMergeTree()" "feedback_state"}}
ORDER BY ticket_id;

{{distributed "feedback_state" "cityHash64(ticket_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "feedback_state_mv"}} {{onCluster}} TO {{local "feedback_state"}} AS
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
    argMaxIfState(officer, time, officer != '') AS officer_s,
    maxIfState(time, type = 'resolved') AS resolved_at_s,
    argMaxIfState(outcome, time, type = 'resolved') AS outcome_s,
    maxIfState(time, type = 'closed') AS closed_at_s,
    argMaxIfState(rating, time, type = 'rated') AS rating_s,
    maxIfState(time, type = 'rated') AS rated_at_s,
    maxState(time) AS last_event_at_s,
    argMaxState(type, time) AS last_type_s
FROM {{local "feedback_events"}}
GROUP BY subject;

CREATE TABLE IF NOT EXISTS {{local "camera_state"}} {{onCluster}} (
    camera_id String,
    online_s AggregateFunction(argMaxIf, UInt8, DateTime, UInt8),
    status_at_s AggregateFunction(maxIf, DateTime, UInt8),
    last_seen_at_s AggregateFunction(max, DateTime),
    congestion_level_s AggregateFunction(argMaxIf, Int8, DateTime, UInt8),
    congestion_at_s AggregateFunction(maxIf, DateTime, UInt8),
    flooding_level_s AggregateFunction(argMaxIf, Int8, DateTime, UInt8),
    flooding_at_s AggregateFunction(maxIf, DateTime, UInt8),
    last_detection_kind_s AggregateFunction(argMaxIf, String, DateTime, UInt8),
    last_detection_at_s AggregateFunction(maxIf, DateTime, UInt8)
) ENGINE = {{engine "AggregatingMergeTree()" "camera_state"}}
ORDER BY camera_id;

{{distributed "camera_state" "cityHash64(camera_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "camera_state_mv"}} {{onCluster}} TO {{local "camera_state"}} AS
SELECT
    subject AS camera_id,
    argMaxIfState(online, time, type = 'status') AS online_s,
    maxIfState(time, type = 'status') AS status_at_s,
    maxState(time) AS last_seen_at_s,
    argMaxIfState(level, time, kind = 'congestion') AS congestion_level_s,
    maxIfState(time, kind = 'congestion') AS congestion_at_s,
    argMaxIfState(level, time, kind = 'flooding') AS flooding_level_s,
    maxIfState(time, kind = 'flooding') AS flooding_at_s,
    argMaxIfState(kind, time, type = 'detection') AS last_detection_kind_s,
    maxIfState(time, type = 'detection') AS last_detection_at_s
FROM {{local "camera_events"}}
GROUP BY subject;
