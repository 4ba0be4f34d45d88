-- Raw event logs, one table per family. ReplacingMergeTree keyed by the
-- event's identity (type, time, source, id): a delivery that reaches
-- ClickHouse twice (a crash between insert and JetStream ack) collapses into
-- one row on merge, and every reader that counts uses FINAL or a state table,
-- so nothing is ever counted twice. Partitioned by the month of the event's own
-- time, so an event months late lands in the partition it belongs to.

CREATE TABLE IF NOT EXISTS {{local "dossier_events"}} {{onCluster}} (
    source String,
    id String,
    type String,
    subject String,
    time DateTime,
    accepted_at DateTime,
    inserted_at DateTime DEFAULT now(),
    unit String,
    procedure_code String,
    procedure_name String,
    field String,
    service_level String,
    channel String,
    due_at DateTime,
    applicant_kind String,
    applicant_ref String,
    applicant_name_ref String,
    fee_paid_online UInt8,
    officer String,
    step String,
    reason String,
    outcome String,
    e_result UInt8,
    portal String,
    components UInt32,
    reused UInt32,
    amount Float64,
    method String,
    data String
) ENGINE = {{engine "ReplacingMergeTree()" "dossier_events"}}
PARTITION BY toYYYYMM(time)
ORDER BY (type, time, source, id);

{{distributed "dossier_events" "cityHash64(source, id)"}}

CREATE TABLE IF NOT EXISTS {{local "feedback_events"}} {{onCluster}} (
    source String,
    id String,
    type String,
    subject String,
    time DateTime,
    accepted_at DateTime,
    inserted_at DateTime DEFAULT now(),
    unit String,
    channel String,
    category String,
    due_at DateTime,
    lat Float64,
    lon Float64,
    address String,
    citizen_ref String,
    citizen_name_ref String,
    citizen_phone_ref String,
    officer String,
    outcome String,
    rating UInt8,
    data String
) ENGINE = {{engine "ReplacingMergeTree()" "feedback_events"}}
PARTITION BY toYYYYMM(time)
ORDER BY (type, time, source, id);

{{distributed "feedback_events" "cityHash64(source, id)"}}

CREATE TABLE IF NOT EXISTS {{local "camera_events"}} {{onCluster}} (
    source String,
    id String,
    type String,
    subject String,
    time DateTime,
    accepted_at DateTime,
    inserted_at DateTime DEFAULT now(),
    online UInt8,
    kind String,
    car UInt32,
    motorcycle UInt32,
    bus UInt32,
    truck UInt32,
    bicycle UInt32,
    person UInt32,
    level Int8,
    confidence Float32,
    window_s UInt32,
    data String
) ENGINE = {{engine "ReplacingMergeTree()" "camera_events"}}
PARTITION BY toYYYYMM(time)
ORDER BY (type, time, source, id);

{{distributed "camera_events" "cityHash64(source, id)"}}

CREATE TABLE IF NOT EXISTS {{local "survey_events"}} {{onCluster}} (
    source String,
    id String,
    type String,
    subject String,
    time DateTime,
    accepted_at DateTime,
    inserted_at DateTime DEFAULT now(),
    unit String,
    rating String,
    score Int8,
    channel String,
    officer String,
    dossier String,
    attitude UInt8,
    timeliness UInt8,
    guidance UInt8,
    comment String,
    data String
) ENGINE = {{engine "ReplacingMergeTree()" "survey_events"}}
PARTITION BY toYYYYMM(time)
ORDER BY (type, time, source, id);

{{distributed "survey_events" "cityHash64(source, id)"}}

CREATE TABLE IF NOT EXISTS {{local "indicator_events"}} {{onCluster}} (
    source String,
    id String,
    type String,
    subject String,
    time DateTime,
    accepted_at DateTime,
    inserted_at DateTime DEFAULT now(),
    unit String,
    period String,
    value Float64,
    measure String,
    indicator_source String,
    data String
) ENGINE = {{engine "ReplacingMergeTree()" "indicator_events"}}
PARTITION BY toYYYYMM(time)
ORDER BY (type, time, source, id);

{{distributed "indicator_events" "cityHash64(source, id)"}}

-- Events that can never be inserted: raw payload, reason, when.
CREATE TABLE IF NOT EXISTS {{local "dead_letters"}} {{onCluster}} (
    time DateTime,
    family String,
    stream_seq UInt64,
    source String,
    id String,
    type String,
    reason String,
    payload String
) ENGINE = {{engine "MergeTree()" "dead_letters"}}
PARTITION BY toYYYYMM(time)
ORDER BY (time, family, stream_seq);

{{distributed "dead_letters" "rand()"}}
