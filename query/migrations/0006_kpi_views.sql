-- Views the KPI catalog reads besides dossiers, tickets, surveys and
-- detections.

-- One row per registered camera with its unit and its latest state; a
-- camera never heard from has online = 0 and times at 1970-01-01.
CREATE VIEW IF NOT EXISTS {{.DB}}.camera_overview {{onCluster}} AS
SELECT camera_id, unit, name, online, status_at, last_seen_at, congestion_level, congestion_at, flooding_level, flooding_at
FROM (
    SELECT id AS camera_id, unit, name FROM {{.DB}}.cameras
) ANY LEFT JOIN (
    SELECT camera_id, online, status_at, last_seen_at, congestion_level, congestion_at, flooding_level, flooding_at
    FROM {{.DB}}.camera_status
) USING camera_id;
