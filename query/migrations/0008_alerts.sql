-- Alerts: every state an alert went through (raised, acknowledged,
-- cleared), written by the node that evaluates the alert rules. A row is
-- the whole alert after one change; version (milliseconds since 1970 of
-- the change) orders the rows of one alert. Rows written twice (a retried
-- insert) are the same (id, version) and merge into one.
CREATE TABLE IF NOT EXISTS {{local "alert_log"}} {{onCluster}} (
    id String,
    rule String,
    kind String,
    severity String,
    unit String,
    subject_kind String,
    subject String,
    state String,
    title String,
    title_vi String,
    detail String,
    value Float64,
    threshold Float64,
    raised_at DateTime,
    acked_at DateTime,
    acked_by String,
    ack_note String,
    cleared_at DateTime,
    version UInt64
) ENGINE = {{engine "ReplacingMergeTree()" "alert_log"}}
PARTITION BY toYYYYMM(raised_at)
ORDER BY (id, version);

{{distributed "alert_log" "cityHash64(id)"}}

-- alerts: one row per alert, its latest state. acked_at and cleared_at are
-- 1970-01-01 00:00:00 while not acknowledged or not cleared.
CREATE VIEW IF NOT EXISTS {{.DB}}.alerts {{onCluster}} AS
SELECT
    id, s.1 AS rule, s.2 AS kind, s.3 AS severity, s.4 AS unit, s.5 AS subject_kind, s.6 AS subject,
    s.7 AS state, s.8 AS title, s.9 AS title_vi, s.10 AS detail, s.11 AS value, s.12 AS threshold,
    first_raised AS raised_at, s.13 AS acked_at, s.14 AS acked_by, s.15 AS ack_note, s.16 AS cleared_at,
    last_version AS version
FROM (
    SELECT
        id,
        argMax(tuple(rule, kind, severity, unit, subject_kind, subject, state, title, title_vi, detail, value,
                     threshold, acked_at, acked_by, ack_note, cleared_at), version) AS s,
        min(raised_at) AS first_raised,
        max(version) AS last_version
    FROM {{.DB}}.alert_log
    GROUP BY id
);
