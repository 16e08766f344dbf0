"""The Grafana dashboard over ClickHouse, and the offline report drawn from the same SQL.

`clickstream.json` (package data) is the dashboard Grafana provisions
(`dashboards/grafana/provisioning/` points at this very file): panels over the real-time
aggregates and the pipeline's health, each with its SQL in the ClickHouse data source's
query model. `board` reads it, `macros` expands a panel's SQL as Grafana and the plugin
would, and `report` runs every panel against ClickHouse and returns a `model.Report`, so
`clickstream report --from clickhouse` and `dashboards render --from clickhouse` show the
numbers Grafana shows.
"""
