-- Reference data. Each load writes a new version of every row (and a
-- tombstone, deleted = 1, for a row the new set no longer has); readers use
-- the views of 0004, which keep the latest version and drop tombstones.

CREATE TABLE IF NOT EXISTS {{local "ref_units"}} {{onCluster}} (
    code String,
    parent String,
    name String,
    level UInt8,
    kind String,
    lat Float64,
    lon Float64,
    population UInt32,
    area_km2 Float64,
    valid_from Date,
    valid_to Date,
    path Array(String),
    successors Array(String),
    version UInt64,
    deleted UInt8
) ENGINE = {{engine "ReplacingMergeTree(version)" "ref_units"}}
ORDER BY code;

{{distributed "ref_units" "cityHash64(code)"}}

CREATE TABLE IF NOT EXISTS {{local "ref_procedures"}} {{onCluster}} (
    code String,
    name String,
    field String,
    unit_kind String,
    deadline_days Float32,
    deadline_hours Float32,
    service_level String,
    fee UInt8,
    version UInt64,
    deleted UInt8
) ENGINE = {{engine "ReplacingMergeTree(version)" "ref_procedures"}}
ORDER BY code;

{{distributed "ref_procedures" "cityHash64(code)"}}

CREATE TABLE IF NOT EXISTS {{local "ref_officers"}} {{onCluster}} (
    id String,
    unit String,
    name String,
    title String,
    version UInt64,
    deleted UInt8
) ENGINE = {{engine "ReplacingMergeTree(version)" "ref_officers"}}
ORDER BY id;

{{distributed "ref_officers" "cityHash64(id)"}}

CREATE TABLE IF NOT EXISTS {{local "ref_cameras"}} {{onCluster}} (
    id String,
    code String,
    name String,
    lat Float64,
    lon Float64,
    unit String,
    type String,
    ptz UInt8,
    version UInt64,
    deleted UInt8
) ENGINE = {{engine "ReplacingMergeTree(version)" "ref_cameras"}}
ORDER BY id;

{{distributed "ref_cameras" "cityHash64(id)"}}

CREATE TABLE IF NOT EXISTS {{local "ref_calendar"}} {{onCluster}} (
    date Date,
    kind String,
    name String,
    version UInt64,
    deleted UInt8
) ENGINE = {{engine "ReplacingMergeTree(version)" "ref_calendar"}}
ORDER BY date;

{{distributed "ref_calendar" "cityHash64(date)"}}
