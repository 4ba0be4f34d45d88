-- The analysts' SQL API: its audit, and the camera detections view.

-- One row per statement sent to POST /api/v1/sql, refused ones included.
CREATE TABLE IF NOT EXISTS {{local "sql_audit"}} {{onCluster}} (
    time DateTime,
    query_id String,
    who String,
    addr String,
    sql String,
    params String,
    format String,
    duration_ms UInt32,
    rows UInt64,
    bytes UInt64,
    outcome String,
    error String
) ENGINE = {{engine "MergeTree()" "sql_audit"}}
PARTITION BY toYYYYMM(time)
ORDER BY (time, query_id);

{{distributed "sql_audit" "rand()"}}

-- Camera detections (vehicle counts, congestion, flooding …) with the unit
-- of the camera, one row per detection event.
CREATE VIEW IF NOT EXISTS {{.DB}}.detections {{onCluster}} AS
SELECT camera_id, time, unit, kind, level, confidence, window_s, car, motorcycle, bus, truck, bicycle, person, source, id
FROM (
    SELECT subject AS camera_id, time, kind, level, confidence, window_s, car, motorcycle, bus, truck, bicycle, person, source, id
    FROM {{.DB}}.camera_events FINAL
    WHERE type = 'detection'
) ANY LEFT JOIN (
    SELECT id AS camera_id, unit FROM {{.DB}}.cameras
) USING camera_id;
