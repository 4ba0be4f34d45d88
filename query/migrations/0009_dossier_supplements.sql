-- Supplement pauses: when each supplement was requested and received, so
-- that working time can be measured net of the time a dossier waited for
-- the citizen (dossier.avg_processing_days).
--
-- dossier_state gains two idempotent aggregates (sets of times). A table fed
-- by a materialized view must get every column from it, so the view that
-- folds the events is replaced by one that fills them too, in an order that
-- never lets an insert reach the events without reaching the state: after
-- the ALTER the old view refuses inserts (the writer retries them), the new
-- view is created, then the old one dropped. A retried insert folds its
-- events again, which changes nothing (every aggregate is idempotent). The
-- dossiers stored before get their supplement times from the raw events.

ALTER TABLE {{local "dossier_state"}} {{onCluster}}
    ADD COLUMN supplement_requested_s AggregateFunction(groupUniqArrayIf, DateTime, UInt8),
    ADD COLUMN supplement_received_s AggregateFunction(groupUniqArrayIf, DateTime, UInt8);

{{redistribute "dossier_state" "cityHash64(dossier_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "dossier_state_mv2"}} {{onCluster}} TO {{local "dossier_state"}} AS
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
    uniqExactState(source, id) AS events_s,
    groupUniqArrayIfState(time, type = 'supplement_requested') AS supplement_requested_s,
    groupUniqArrayIfState(time, type = 'supplement_received') AS supplement_received_s
FROM {{local "dossier_events"}}
GROUP BY subject;

DROP TABLE IF EXISTS {{local "dossier_state_mv"}} {{onCluster}};

INSERT INTO {{.DB}}.dossier_state (dossier_id, supplement_requested_s, supplement_received_s)
SELECT
    subject,
    groupUniqArrayIfState(time, type = 'supplement_requested'),
    groupUniqArrayIfState(time, type = 'supplement_received')
FROM {{.DB}}.dossier_events
WHERE type IN ('supplement_requested', 'supplement_received')
GROUP BY subject;

-- The dossiers view with the supplement times: supplement_requested_at and
-- supplement_received_at (sorted), and supplement_paused_until, for each
-- request, when its pause ended: the first reception at or after it, the
-- next request, the resolution or the withdrawal, whichever came first
-- (never before the request); 1970-01-01 while the dossier still waits.
-- (The lambdas get the other columns as arguments: ClickHouse 18.16 does
-- not read the columns a lambda of a view captures.)
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
FROM {{.DB}}.dossier_state
GROUP BY dossier_id;
