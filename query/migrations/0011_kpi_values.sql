-- KPI values: every value the KPI engine published (a row each time a
-- key's value changed), copied from the NATS KV bucket of latest values by
-- the nodes. seq counts the changes of one key. A row copied twice (a
-- redelivery) is the same (kpi, unit, period, seq, at) and the view counts
-- it once.
CREATE TABLE IF NOT EXISTS {{local "kpi_value_log"}} {{onCluster}} (
    kpi String,
    unit String,
    period String, -- the key's window: today, week, month, quarter, ytd, 24h, 7d, 30d
    seq UInt64,
    value Nullable(Float64),
    numerator Int64,
    denominator Int64,
    window_from DateTime,
    window_to DateTime,
    at DateTime,
    as_of DateTime,
    version UInt32,
    published_at DateTime
) ENGINE = {{engine "ReplacingMergeTree()" "kpi_value_log"}}
PARTITION BY toYYYYMM(at)
ORDER BY (kpi, unit, period, seq, at);

{{distributed "kpi_value_log" "cityHash64(kpi, unit)"}}

-- kpi_values: the history of every KPI key, one row per published value.
-- window_from and window_to are 1970-01-01 00:00:00 for instant KPIs.
CREATE VIEW IF NOT EXISTS {{.DB}}.kpi_values {{onCluster}} AS
SELECT
    kpi, unit, period, seq, s.1 AS value, s.2 AS numerator, s.3 AS denominator, s.4 AS window_from,
    s.5 AS window_to, at, s.6 AS as_of, s.7 AS version, s.8 AS published_at
FROM (
    SELECT kpi, unit, period, seq, at,
        any(tuple(value, numerator, denominator, window_from, window_to, as_of, version, published_at)) AS s
    FROM {{.DB}}.kpi_value_log
    GROUP BY kpi, unit, period, seq, at
);
