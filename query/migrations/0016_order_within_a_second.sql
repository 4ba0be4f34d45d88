-- Events of one entity in the same second are ordered.
--
-- Event times were kept to the second, and the state columns that take the
-- value of the latest event (argMax: holder_unit, officer, due_at, a
-- camera's online, last_type …) left two events of one second unordered:
-- the one shown was whichever ClickHouse folded first. Now:
--
-- - every event table keeps the microseconds of the event's time (`time_us`;
--   0 for the events stored before, and for senders whose times have none);
-- - the state is folded by an order key, the same on every path and for any
--   arrival order (an event's key depends on the event alone):
--
--     time (seconds), then time_us, then the transition's place in the
--     lifecycle (dossier: received, assigned, due_changed,
--     supplement_requested, supplement_received, paid, digitized, synced,
--     resolved, returned, apology_issued, withdrawn; ticket: received,
--     assigned, resolved, closed, rated), then a hash of source and id
--     (arbitrary, but the same on every server and every run).
--
--   So a dossier received and passed on to another unit in the same second
--   is held by the unit it was passed to, and an officer's resolution in the
--   second of an assignment names the resolving officer.
--
-- An aggregate state's type names its ordering type, so the state tables
-- are built anew (`*_state2`), fed by new views, and filled from the event
-- tables. Every aggregate is idempotent, so an event folded both by the new
-- view and by the fill counts once. The fill goes in slices of entities,
-- which bounds its memory; once the old views are dropped, a last pass
-- folds again the events inserted in the last day, for an insert that was
-- under way while the new view was created and whose rows the slices did
-- not see. The views `dossiers`, `tickets`, `camera_status`,
-- `camera_overview` then read the new tables (same columns, same meanings),
-- the old tables are dropped, and the KPI engine rebuilds what it built from
-- them.

ALTER TABLE {{local "dossier_events"}} {{onCluster}} ADD COLUMN time_us UInt32 DEFAULT 0 AFTER time;
{{redistribute "dossier_events" "cityHash64(source, id)"}}
ALTER TABLE {{local "feedback_events"}} {{onCluster}} ADD COLUMN time_us UInt32 DEFAULT 0 AFTER time;
{{redistribute "feedback_events" "cityHash64(source, id)"}}
ALTER TABLE {{local "camera_events"}} {{onCluster}} ADD COLUMN time_us UInt32 DEFAULT 0 AFTER time;
{{redistribute "camera_events" "cityHash64(source, id)"}}
ALTER TABLE {{local "survey_events"}} {{onCluster}} ADD COLUMN time_us UInt32 DEFAULT 0 AFTER time;
{{redistribute "survey_events" "cityHash64(source, id)"}}
ALTER TABLE {{local "indicator_events"}} {{onCluster}} ADD COLUMN time_us UInt32 DEFAULT 0 AFTER time;
{{redistribute "indicator_events" "cityHash64(source, id)"}}

{{- define "dossierOrder"}}toUInt64(toUInt64(time) * 4294967296 + toUInt64(time_us) * 4096 + indexOf(['received', 'assigned', 'due_changed', 'supplement_requested', 'supplement_received', 'paid', 'digitized', 'synced', 'resolved', 'returned', 'apology_issued', 'withdrawn'], type) * 256 + cityHash64(source, id) % 256) AS ord{{end}}
{{- define "ticketOrder"}}toUInt64(toUInt64(time) * 4294967296 + toUInt64(time_us) * 4096 + indexOf(['received', 'assigned', 'resolved', 'closed', 'rated'], type) * 256 + cityHash64(source, id) % 256) AS ord{{end}}
{{- define "cameraOrder"}}toUInt64(toUInt64(time) * 4294967296 + toUInt64(time_us) * 4096 + indexOf(['status', 'detection'], type) * 256 + cityHash64(source, id) % 256) AS ord{{end}}

{{- define "dossierFold"}}
    subject AS dossier_id,
    minIfState(time, type = 'received') AS received_at_s,
    argMaxIfState(unit, ord, type = 'received') AS unit_s,
    argMaxIfState(unit, ord, unit != '') AS holder_unit_s,
    argMaxIfState(procedure_code, ord, type = 'received') AS procedure_code_s,
    argMaxIfState(procedure_name, ord, type = 'received') AS procedure_name_s,
    argMaxIfState(field, ord, type = 'received') AS field_s,
    argMaxIfState(service_level, ord, type = 'received') AS service_level_s,
    argMaxIfState(channel, ord, type = 'received') AS channel_s,
    argMaxIfState(applicant_kind, ord, type = 'received') AS applicant_kind_s,
    argMaxIfState(applicant_ref, ord, type = 'received') AS applicant_ref_s,
    argMaxIfState(due_at, ord, due_at > toDateTime(0)) AS due_at_s,
    argMinIfState(due_at, ord, type = 'received' AND due_at > toDateTime(0)) AS first_due_at_s,
    argMaxIfState(officer, ord, officer != '') AS officer_s,
    maxIfState(time, type = 'resolved') AS resolved_at_s,
    argMaxIfState(outcome, ord, type = 'resolved') AS outcome_s,
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
    argMaxState(type, ord) AS last_type_s,
    uniqExactState(source, id) AS events_s,
    groupUniqArrayIfState(time, type = 'supplement_requested') AS supplement_requested_s,
    groupUniqArrayIfState(time, type = 'supplement_received') AS supplement_received_s
{{- end}}

{{- define "ticketFold"}}
    subject AS ticket_id,
    minIfState(time, type = 'received') AS received_at_s,
    argMaxIfState(unit, ord, type = 'received') AS unit_s,
    argMaxIfState(unit, ord, unit != '') AS holder_unit_s,
    argMaxIfState(channel, ord, type = 'received') AS channel_s,
    argMaxIfState(category, ord, type = 'received') AS category_s,
    argMaxIfState(due_at, ord, due_at > toDateTime(0)) AS due_at_s,
    argMaxIfState(lat, ord, type = 'received') AS lat_s,
    argMaxIfState(lon, ord, type = 'received') AS lon_s,
    argMaxIfState(citizen_ref, ord, type = 'received') AS citizen_ref_s,
    argMaxIfState(officer, ord, type = 'assigned' OR officer != '') AS officer_s,
    maxIfState(time, type = 'resolved') AS resolved_at_s,
    argMaxIfState(outcome, ord, type = 'resolved') AS outcome_s,
    maxIfState(time, type = 'closed') AS closed_at_s,
    argMaxIfState(rating, ord, type = 'rated') AS rating_s,
    maxIfState(time, type = 'rated') AS rated_at_s,
    maxState(time) AS last_event_at_s,
    argMaxState(type, ord) AS last_type_s
{{- end}}

{{- define "cameraFold"}}
    subject AS camera_id,
    argMaxIfState(online, ord, type = 'status') AS online_s,
    maxIfState(time, type = 'status') AS status_at_s,
    maxState(time) AS last_seen_at_s,
    argMaxIfState(level, ord, kind = 'congestion') AS congestion_level_s,
    maxIfState(time, kind = 'congestion') AS congestion_at_s,
    argMaxIfState(level, ord, kind = 'flooding') AS flooding_level_s,
    maxIfState(time, kind = 'flooding') AS flooding_at_s,
    argMaxIfState(kind, ord, type = 'detection') AS last_detection_kind_s,
    maxIfState(time, type = 'detection') AS last_detection_at_s
{{- end}}

CREATE TABLE IF NOT EXISTS {{local "dossier_state2"}} {{onCluster}} (
    dossier_id String,
    received_at_s AggregateFunction(minIf, DateTime, UInt8),
    unit_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    holder_unit_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    procedure_code_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    procedure_name_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    field_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    service_level_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    channel_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    applicant_kind_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    applicant_ref_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    due_at_s AggregateFunction(argMaxIf, DateTime, UInt64, UInt8),
    first_due_at_s AggregateFunction(argMinIf, DateTime, UInt64, UInt8),
    officer_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    resolved_at_s AggregateFunction(maxIf, DateTime, UInt8),
    outcome_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
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
    last_type_s AggregateFunction(argMax, String, UInt64),
    events_s AggregateFunction(uniqExact, String, String),
    supplement_requested_s AggregateFunction(groupUniqArrayIf, DateTime, UInt8),
    supplement_received_s AggregateFunction(groupUniqArrayIf, DateTime, UInt8)
) ENGINE = {{engine "AggregatingMergeTree()" "dossier_state2"}}
ORDER BY dossier_id;

{{distributed "dossier_state2" "cityHash64(dossier_id)"}}

CREATE TABLE IF NOT EXISTS {{local "feedback_state2"}} {{onCluster}} (
    ticket_id String,
    received_at_s AggregateFunction(minIf, DateTime, UInt8),
    unit_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    holder_unit_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    channel_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    category_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    due_at_s AggregateFunction(argMaxIf, DateTime, UInt64, UInt8),
    lat_s AggregateFunction(argMaxIf, Float64, UInt64, UInt8),
    lon_s AggregateFunction(argMaxIf, Float64, UInt64, UInt8),
    citizen_ref_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    officer_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    resolved_at_s AggregateFunction(maxIf, DateTime, UInt8),
    outcome_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    closed_at_s AggregateFunction(maxIf, DateTime, UInt8),
    rating_s AggregateFunction(argMaxIf, UInt8, UInt64, UInt8),
    rated_at_s AggregateFunction(maxIf, DateTime, UInt8),
    last_event_at_s AggregateFunction(max, DateTime),
    last_type_s AggregateFunction(argMax, String, UInt64)
) ENGINE = {{engine "AggregatingMergeTree()" "feedback_state2"}}
ORDER BY ticket_id;

{{distributed "feedback_state2" "cityHash64(ticket_id)"}}

CREATE TABLE IF NOT EXISTS {{local "camera_state2"}} {{onCluster}} (
    camera_id String,
    online_s AggregateFunction(argMaxIf, UInt8, UInt64, UInt8),
    status_at_s AggregateFunction(maxIf, DateTime, UInt8),
    last_seen_at_s AggregateFunction(max, DateTime),
    congestion_level_s AggregateFunction(argMaxIf, Int8, UInt64, UInt8),
    congestion_at_s AggregateFunction(maxIf, DateTime, UInt8),
    flooding_level_s AggregateFunction(argMaxIf, Int8, UInt64, UInt8),
    flooding_at_s AggregateFunction(maxIf, DateTime, UInt8),
    last_detection_kind_s AggregateFunction(argMaxIf, String, UInt64, UInt8),
    last_detection_at_s AggregateFunction(maxIf, DateTime, UInt8)
) ENGINE = {{engine "AggregatingMergeTree()" "camera_state2"}}
ORDER BY camera_id;

{{distributed "camera_state2" "cityHash64(camera_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "dossier_state2_mv"}} {{onCluster}} TO {{local "dossier_state2"}} AS
WITH {{template "dossierOrder"}}
SELECT {{template "dossierFold"}}
FROM {{local "dossier_events"}}
GROUP BY subject;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "feedback_state2_mv"}} {{onCluster}} TO {{local "feedback_state2"}} AS
WITH {{template "ticketOrder"}}
SELECT {{template "ticketFold"}}
FROM {{local "feedback_events"}}
GROUP BY subject;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "camera_state2_mv"}} {{onCluster}} TO {{local "camera_state2"}} AS
WITH {{template "cameraOrder"}}
SELECT {{template "cameraFold"}}
FROM {{local "camera_events"}}
GROUP BY subject;

{{range slices 8}}
INSERT INTO {{$.DB}}.dossier_state2
WITH {{template "dossierOrder"}}
SELECT {{template "dossierFold"}}
FROM {{$.DB}}.dossier_events
WHERE cityHash64(subject) % 8 = {{.}}
GROUP BY subject;

INSERT INTO {{$.DB}}.feedback_state2
WITH {{template "ticketOrder"}}
SELECT {{template "ticketFold"}}
FROM {{$.DB}}.feedback_events
WHERE cityHash64(subject) % 8 = {{.}}
GROUP BY subject;
{{end}}

INSERT INTO {{.DB}}.camera_state2
WITH {{template "cameraOrder"}}
SELECT {{template "cameraFold"}}
FROM {{.DB}}.camera_events
GROUP BY subject;

-- The old views go before the last pass: dropping a view waits for the
-- inserts that feed it, so an insert begun before the new views existed
-- (and which feeds the old ones only) has landed when the pass reads.
DROP TABLE IF EXISTS {{local "dossier_state_mv2"}} {{onCluster}};
DROP TABLE IF EXISTS {{local "feedback_state_mv2"}} {{onCluster}};
DROP TABLE IF EXISTS {{local "camera_state_mv"}} {{onCluster}};

INSERT INTO {{.DB}}.dossier_state2
WITH {{template "dossierOrder"}}
SELECT {{template "dossierFold"}}
FROM {{.DB}}.dossier_events
WHERE inserted_at >= now() - 86400
GROUP BY subject;

INSERT INTO {{.DB}}.feedback_state2
WITH {{template "ticketOrder"}}
SELECT {{template "ticketFold"}}
FROM {{.DB}}.feedback_events
WHERE inserted_at >= now() - 86400
GROUP BY subject;

INSERT INTO {{.DB}}.camera_state2
WITH {{template "cameraOrder"}}
SELECT {{template "cameraFold"}}
FROM {{.DB}}.camera_events
WHERE inserted_at >= now() - 86400
GROUP BY subject;

-- The views read the new tables: same columns, same meanings (schemas 4, 9
-- and 13).
DROP TABLE IF EXISTS {{.DB}}.dossiers {{onCluster}};

CREATE VIEW IF NOT EXISTS {{.DB}}.dossiers {{onCluster}} AS
SELECT
    dossier_id,
    minIfMerge(received_at_s) AS received_at,
    argMaxIfMerge(unit_s) AS unit,
    argMaxIfMerge(holder_unit_s) AS holder_unit,
    argMaxIfMerge(procedure_code_s) AS procedure_code,
    argMaxIfMerge(procedure_name_s) AS procedure_name,
    argMaxIfMerge(field_s) AS field,
    argMaxIfMerge(service_level_s) AS service_level,
    argMaxIfMerge(channel_s) AS channel,
    argMaxIfMerge(applicant_kind_s) AS applicant_kind,
    argMaxIfMerge(applicant_ref_s) AS applicant_ref,
    argMaxIfMerge(due_at_s) AS due_at,
    argMinIfMerge(first_due_at_s) AS first_due_at,
    argMaxIfMerge(officer_s) AS officer,
    maxIfMerge(resolved_at_s) AS resolved_at,
    argMaxIfMerge(outcome_s) AS outcome,
    maxIfMerge(e_result_s) AS e_result,
    maxIfMerge(returned_at_s) AS returned_at,
    maxIfMerge(withdrawn_at_s) AS withdrawn_at,
    uniqExactIfMerge(supplements_s) AS supplements,
    maxMerge(apology_s) AS apology_issued,
    maxMerge(synced_s) AS synced,
    maxMerge(digitized_s) AS digitized,
    maxMerge(reused_s) AS reused,
    maxMerge(fee_paid_s) AS fee_paid,
    maxMerge(paid_online_s) AS paid_online,
    maxMerge(last_event_at_s) AS last_event_at,
    argMaxMerge(last_type_s) AS last_type,
    uniqExactMerge(events_s) AS events,
    arraySort(groupUniqArrayIfMerge(supplement_requested_s)) AS supplement_requested_at,
    arraySort(groupUniqArrayIfMerge(supplement_received_s)) AS supplement_received_at,
    arrayMap((r, i, received, requested, ends) -> arrayElement(arrayMap(
            stops -> if(empty(stops), toDateTime(0), greatest(r, arrayReduce('min', stops))),
            [arrayConcat(arrayFilter(x -> x >= r, received), arraySlice(requested, i + 1, 1), arrayFilter(x -> x > toDateTime(0), ends))]), 1),
        supplement_requested_at, arrayEnumerate(supplement_requested_at),
        arrayResize([supplement_received_at], length(supplement_requested_at), supplement_received_at),
        arrayResize([supplement_requested_at], length(supplement_requested_at), supplement_requested_at),
        arrayResize([[resolved_at, withdrawn_at]], length(supplement_requested_at), [resolved_at, withdrawn_at])) AS supplement_paused_until
FROM {{.DB}}.dossier_state2
GROUP BY dossier_id;

DROP TABLE IF EXISTS {{.DB}}.tickets {{onCluster}};

CREATE VIEW IF NOT EXISTS {{.DB}}.tickets {{onCluster}} AS
SELECT
    ticket_id,
    minIfMerge(received_at_s) AS received_at,
    argMaxIfMerge(unit_s) AS unit,
    argMaxIfMerge(holder_unit_s) AS holder_unit,
    argMaxIfMerge(channel_s) AS channel,
    argMaxIfMerge(category_s) AS category,
    argMaxIfMerge(due_at_s) AS due_at,
    argMaxIfMerge(lat_s) AS lat,
    argMaxIfMerge(lon_s) AS lon,
    argMaxIfMerge(citizen_ref_s) AS citizen_ref,
    argMaxIfMerge(officer_s) AS officer,
    maxIfMerge(resolved_at_s) AS resolved_at,
    argMaxIfMerge(outcome_s) AS outcome,
    maxIfMerge(closed_at_s) AS closed_at,
    argMaxIfMerge(rating_s) AS rating,
    maxIfMerge(rated_at_s) AS rated_at,
    maxMerge(last_event_at_s) AS last_event_at,
    argMaxMerge(last_type_s) AS last_type
FROM {{.DB}}.feedback_state2
GROUP BY ticket_id;

DROP TABLE IF EXISTS {{.DB}}.camera_status {{onCluster}};

CREATE VIEW IF NOT EXISTS {{.DB}}.camera_status {{onCluster}} AS
SELECT
    camera_id,
    argMaxIfMerge(online_s) AS online,
    maxIfMerge(status_at_s) AS status_at,
    maxMerge(last_seen_at_s) AS last_seen_at,
    argMaxIfMerge(congestion_level_s) AS congestion_level,
    maxIfMerge(congestion_at_s) AS congestion_at,
    argMaxIfMerge(flooding_level_s) AS flooding_level,
    maxIfMerge(flooding_at_s) AS flooding_at,
    argMaxIfMerge(last_detection_kind_s) AS last_detection_kind,
    maxIfMerge(last_detection_at_s) AS last_detection_at
FROM {{.DB}}.camera_state2
GROUP BY camera_id;

DROP TABLE IF EXISTS {{.DB}}.camera_overview {{onCluster}};

CREATE VIEW IF NOT EXISTS {{.DB}}.camera_overview {{onCluster}} AS
SELECT camera_id, unit, name, online, status_at, last_seen_at, congestion_level, congestion_at, flooding_level, flooding_at
FROM (
    SELECT id AS camera_id, unit, name FROM {{.DB}}.cameras
) ANY LEFT JOIN (
    SELECT
        camera_id,
        argMaxIfMerge(online_s) AS online,
        maxIfMerge(status_at_s) AS status_at,
        maxMerge(last_seen_at_s) AS last_seen_at,
        argMaxIfMerge(congestion_level_s) AS congestion_level,
        maxIfMerge(congestion_at_s) AS congestion_at,
        argMaxIfMerge(flooding_level_s) AS flooding_level,
        maxIfMerge(flooding_at_s) AS flooding_at
    FROM {{.DB}}.camera_state2
    GROUP BY camera_id
) USING camera_id;

-- An indicator reported again for the same unit and period takes the later
-- report, ordered as above (time, time_us, then a hash of source and id).
DROP TABLE IF EXISTS {{.DB}}.indicators {{onCluster}};

CREATE VIEW IF NOT EXISTS {{.DB}}.indicators {{onCluster}} AS
SELECT subject AS indicator, unit, period,
       argMax(value, toUInt64(toUInt64(time) * 4294967296 + toUInt64(time_us) * 4096 + cityHash64(source, id) % 256)) AS value,
       argMax(measure, toUInt64(toUInt64(time) * 4294967296 + toUInt64(time_us) * 4096 + cityHash64(source, id) % 256)) AS measure,
       argMax(indicator_source, toUInt64(toUInt64(time) * 4294967296 + toUInt64(time_us) * 4096 + cityHash64(source, id) % 256)) AS indicator_source,
       max(time) AS reported_at
FROM {{.DB}}.indicator_events
GROUP BY subject, unit, period;

-- The old tables. (On one server the local table of t is t itself, and the
-- second DROP of a pair finds nothing.)
DROP TABLE IF EXISTS {{.DB}}.dossier_state {{onCluster}};
DROP TABLE IF EXISTS {{local "dossier_state"}} {{onCluster}};
DROP TABLE IF EXISTS {{.DB}}.feedback_state {{onCluster}};
DROP TABLE IF EXISTS {{local "feedback_state"}} {{onCluster}};
DROP TABLE IF EXISTS {{.DB}}.camera_state {{onCluster}};
DROP TABLE IF EXISTS {{local "camera_state"}} {{onCluster}};

-- The KPI engine's rollups, contributions and open entities were built from
-- the state as the old views folded it: a family built before is marked as
-- built with no known definitions, so that the next node to lead rebuilds it.
INSERT INTO {{.DB}}.kpi_definitions (family, fingerprint, written)
SELECT family, '', toUInt64(toUInt64(now()) * 1000000000)
FROM {{.DB}}.kpi_definitions
GROUP BY family;
