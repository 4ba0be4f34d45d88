-- KPI rollups, so that recomputing a KPI costs what its windows hold, not
-- what the whole history holds.
--
-- entity_hours: in which hour a dossier or ticket was received, resolved or
-- rated. Fed by materialized views from the raw events (a repeated event
-- repeats a row, which merges away and is harmless: it is only used as a
-- filter). The KPI engine recomputes an hour of a rollup from the entities
-- of that hour only.
CREATE TABLE IF NOT EXISTS {{local "entity_hours"}} {{onCluster}} (
    family String,
    kind String,
    hour DateTime,
    id String
) ENGINE = {{engine "ReplacingMergeTree()" "entity_hours"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (family, kind, hour, id);

{{distributed "entity_hours" "cityHash64(id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "dossier_hours_mv"}} {{onCluster}} TO {{local "entity_hours"}} AS
SELECT 'dossier' AS family, type AS kind, toStartOfHour(time) AS hour, subject AS id
FROM {{local "dossier_events"}}
WHERE type IN ('received', 'resolved');

CREATE MATERIALIZED VIEW IF NOT EXISTS {{local "feedback_hours_mv"}} {{onCluster}} TO {{local "entity_hours"}} AS
SELECT 'feedback' AS family, type AS kind, toStartOfHour(time) AS hour, subject AS id
FROM {{local "feedback_events"}}
WHERE type IN ('received', 'resolved', 'rated');

-- The events stored before this migration.
INSERT INTO {{.DB}}.entity_hours (family, kind, hour, id)
SELECT 'dossier', type, toStartOfHour(time), subject FROM {{.DB}}.dossier_events WHERE type IN ('received', 'resolved');

INSERT INTO {{.DB}}.entity_hours (family, kind, hour, id)
SELECT 'feedback', type, toStartOfHour(time), subject FROM {{.DB}}.feedback_events WHERE type IN ('received', 'resolved', 'rated');

-- kpi_hourly, kpi_daily: the numerator and denominator of every windowed
-- KPI per hour (per local day) and unit, written by the KPI engine only,
-- each recomputation a new version of the rows it changed; read the latest
-- version of each (kpi, hour, unit), e.g. argMax(numerator, version).
-- Units with nothing counted have no row (or a zero row once they had one).
CREATE TABLE IF NOT EXISTS {{local "kpi_hourly"}} {{onCluster}} (
    kpi String,
    hour DateTime,
    unit String,
    numerator Int64,
    denominator Int64,
    version UInt64
) ENGINE = {{engine "ReplacingMergeTree(version)" "kpi_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (kpi, hour, unit);

{{distributed "kpi_hourly" "cityHash64(kpi, unit)"}}

CREATE TABLE IF NOT EXISTS {{local "kpi_daily"}} {{onCluster}} (
    kpi String,
    day Date,
    unit String,
    numerator Int64,
    denominator Int64,
    version UInt64
) ENGINE = {{engine "ReplacingMergeTree(version)" "kpi_daily"}}
PARTITION BY toYear(day)
ORDER BY (kpi, day, unit);

{{distributed "kpi_daily" "cityHash64(kpi, unit)"}}
