-- kpi_open: the open entities (dossiers, tickets) that the instant KPIs
-- count (dossier.overdue_open, dossier.due_soon, feedback.overdue_open),
-- so that taking them costs what is open now, not the whole history.
--
-- Written by the KPI engine only. For a family, a generation `gen` (the
-- nanosecond it was started) is a complete set: the engine fills a new one
-- from the state view (when it takes over or rebuilds) or from the open
-- rows of the previous generation (hourly), then writes its marker row
-- (id = ''), then reads and writes only the newest marked generation and
-- drops the older ones, a partition each. Within a generation every
-- commit writes one row per entity it touched, as a new version: its unit
-- and latest deadline, and open = 1 when the entity is open (the source's
-- `open` condition in query/kpi/catalog.yaml), else 0. Read the latest
-- version of each (family, gen, id), e.g. argMax(open, version).
CREATE TABLE IF NOT EXISTS {{local "kpi_open"}} {{onCluster}} (
    family String,
    gen UInt64,
    id String,
    unit String,
    due_at DateTime,
    open UInt8,
    version UInt64
) ENGINE = {{engine "ReplacingMergeTree(version)" "kpi_open"}}
PARTITION BY (family, gen)
ORDER BY (family, gen, id);

{{distributed "kpi_open" "cityHash64(id)"}}
