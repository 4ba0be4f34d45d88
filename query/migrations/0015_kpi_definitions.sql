-- kpi_definitions: the fingerprint of the definitions a family's rollups
-- and open entities were built with (the family's KPIs and their
-- sources). A node taking over whose catalog gives another fingerprint
-- rebuilds the family: a definition changed (a filter, a time column, a
-- source's open condition) applies to all history, not only to what is
-- committed from then on.
CREATE TABLE IF NOT EXISTS {{local "kpi_definitions"}} {{onCluster}} (
    family String,
    fingerprint String,
    written UInt64
) ENGINE = {{engine "ReplacingMergeTree(written)" "kpi_definitions"}}
ORDER BY family;

{{distributed "kpi_definitions" "cityHash64(family)"}}
