-- The two curated views that joined another view now join tables: the
-- view a JOIN subquery reads takes its table's lock on a thread of the
-- query's own, which ClickHouse 18.16 can crash releasing (see Ref in
-- query/ref.go). Same columns, same rows.

DROP TABLE IF EXISTS {{.DB}}.detections {{onCluster}};
CREATE VIEW IF NOT EXISTS {{.DB}}.detections {{onCluster}} AS
SELECT camera_id, time, unit, kind, level, confidence, window_s, car, motorcycle, bus, truck, bicycle, person, source, id
FROM (
    SELECT subject AS camera_id, time, kind, level, confidence, window_s, car, motorcycle, bus, truck, bicycle, person, source, id
    FROM {{.DB}}.camera_events FINAL
    WHERE type = 'detection'
) ANY LEFT JOIN (
    SELECT id AS camera_id, unit FROM {{.DB}}.ref_cameras FINAL WHERE deleted = 0
) USING camera_id;

-- camera_status's statement, inline.
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
    FROM {{.DB}}.camera_state
    GROUP BY camera_id
) USING camera_id;
