-- kpi_values took the columns of each copied value from one row with
-- any(tuple(…)). On a cluster the GROUP BY over kpi_value_log merges the
-- shards' partial aggregates, and ClickHouse 18.16 loses a NULL inside a
-- tuple when it moves an any() state between servers: a value with no
-- denominator read as 0, or as a number of no meaning. groupArray(1) keeps
-- the whole row, NULL included; on one server both give the same rows.

DROP TABLE IF EXISTS {{.DB}}.kpi_values {{onCluster}};

CREATE VIEW IF NOT EXISTS {{.DB}}.kpi_values {{onCluster}} AS
SELECT
    kpi, unit, period, seq, s.1 AS value, s.2 AS numerator, s.3 AS denominator, s.4 AS window_from,
    s.5 AS window_to, at, s.6 AS as_of, s.7 AS version, s.8 AS published_at
FROM (
    SELECT kpi, unit, period, seq, at,
        groupArray(1)(tuple(value, numerator, denominator, window_from, window_to, as_of, version, published_at))[1] AS s
    FROM {{.DB}}.kpi_value_log
    GROUP BY kpi, unit, period, seq, at
);
