-- Curated views: what analysts (and later the KPI engine) read.

CREATE VIEW IF NOT EXISTS {{.DB}}.units {{onCluster}} AS
SELECT code, parent, name, level, kind, lat, lon, population, area_km2, valid_from, valid_to, path, successors
FROM {{.DB}}.ref_units FINAL WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS {{.DB}}.procedures {{onCluster}} AS
SELECT code, name, field, unit_kind, deadline_days, deadline_hours, service_level, fee
FROM {{.DB}}.ref_procedures FINAL WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS {{.DB}}.officers {{onCluster}} AS
SELECT id, unit, name, title FROM {{.DB}}.ref_officers FINAL WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS {{.DB}}.cameras {{onCluster}} AS
SELECT id, code, name, lat, lon, unit, type, ptz FROM {{.DB}}.ref_cameras FINAL WHERE deleted = 0;

CREATE VIEW IF NOT EXISTS {{.DB}}.calendar {{onCluster}} AS
SELECT date, kind, name FROM {{.DB}}.ref_calendar FINAL WHERE deleted = 0;

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
    uniqExactMerge(events_s) AS events
FROM {{.DB}}.dossier_state
GROUP BY dossier_id;

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
FROM {{.DB}}.feedback_state
GROUP BY ticket_id;

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
FROM {{.DB}}.camera_state
GROUP BY camera_id;

CREATE VIEW IF NOT EXISTS {{.DB}}.surveys {{onCluster}} AS
SELECT subject AS survey_id, time, unit, rating, score, channel, officer, dossier, attitude, timeliness, guidance, comment, source, id
FROM {{.DB}}.survey_events FINAL;

CREATE VIEW IF NOT EXISTS {{.DB}}.indicators {{onCluster}} AS
SELECT subject AS indicator, unit, period, argMax(value, time) AS value, argMax(measure, time) AS measure,
       argMax(indicator_source, time) AS indicator_source, max(time) AS reported_at
FROM {{.DB}}.indicator_events
GROUP BY subject, unit, period;
