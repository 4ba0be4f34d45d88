-- Rollups by contribution, so that a commit costs what its entities
-- changed, not what the hours they fall in hold.
--
-- kpi_contrib: what each dossier or ticket adds to the rollups, per time
-- column (kind: received, resolved, rated): its hour, its unit and, for
-- each KPI counted by that column, its numerator and denominator (the
-- parallel arrays kpis, numerators, denominators; KPIs it adds nothing to
-- are left out). Written by the KPI engine only: on a commit it reads the
-- new state of the entities touched, writes to the rollups the difference
-- with their previous contribution, then their new contribution as a new
-- version. Read the latest version of each (family, gen, id, kind), e.g.
-- argMax(hour, version). As in kpi_open, a generation `gen` is a complete
-- set, built from the state views when a node takes over with none or
-- rebuilds, and marked by a row with id = ''.
CREATE TABLE IF NOT EXISTS {{local "kpi_contrib"}} {{onCluster}} (
    family String,
    gen UInt64,
    id String,
    kind String,
    hour DateTime,
    unit String,
    kpis Array(String),
    numerators Array(Int64),
    denominators Array(Int64),
    version UInt64
) ENGINE = {{engine "ReplacingMergeTree(version)" "kpi_contrib"}}
PARTITION BY (family, gen)
ORDER BY (family, gen, id, kind);

{{distributed "kpi_contrib" "cityHash64(id)"}}

-- kpi_hourly, kpi_daily become additive: every write is the change of a
-- (kpi, hour, unit) — or (kpi, day, unit) — and the value is the sum of
-- the rows, e.g. sum(numerator). They are derived data: the engine
-- rebuilds them when it finds no generation of kpi_contrib.
DROP TABLE IF EXISTS {{.DB}}.kpi_hourly {{onCluster}};
DROP TABLE IF EXISTS {{local "kpi_hourly"}} {{onCluster}};
DROP TABLE IF EXISTS {{.DB}}.kpi_daily {{onCluster}};
DROP TABLE IF EXISTS {{local "kpi_daily"}} {{onCluster}};

CREATE TABLE IF NOT EXISTS {{local "kpi_hourly"}} {{onCluster}} (
    kpi String,
    hour DateTime,
    unit String,
    numerator Int64,
    denominator Int64
) ENGINE = {{engine "SummingMergeTree()" "kpi_hourly"}}
PARTITION BY toYYYYMM(hour)
ORDER BY (kpi, hour, unit);

{{distributed "kpi_hourly" "cityHash64(kpi, unit)"}}

CREATE TABLE IF NOT EXISTS {{local "kpi_daily"}} {{onCluster}} (
    kpi String,
    day Date,
    unit String,
    numerator Int64,
    denominator Int64
) ENGINE = {{engine "SummingMergeTree()" "kpi_daily"}}
PARTITION BY toYear(day)
ORDER BY (kpi, day, unit);

{{distributed "kpi_daily" "cityHash64(kpi, unit)"}}

-- kpi_progress: when the engine last wrote a family's rollups (unix
-- nanoseconds); a node taking over applies again what was accepted since
-- shortly before.
CREATE TABLE IF NOT EXISTS {{local "kpi_progress"}} {{onCluster}} (
    family String,
    written UInt64
) ENGINE = {{engine "ReplacingMergeTree(written)" "kpi_progress"}}
ORDER BY family;

{{distributed "kpi_progress" "cityHash64(family)"}}
