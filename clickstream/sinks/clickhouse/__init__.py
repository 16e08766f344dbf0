"""The ClickHouse sink: raw events in, real-time aggregates maintained by ClickHouse itself.

Design (foundation; the consume loop wires it in behind the Sink contract):

- One client library for every deployment, clickhouse-connect over HTTP. Locally it talks
  to `clickstream.stack.chserver` (chdb behind the HTTP interface), elsewhere to a real
  server; only host, port and credentials differ. Nothing outside this package and the
  stack's server imports clickhouse_connect or chdb at import time (an optional extra).
- `schema`: the raw `events` table (ReplacingMergeTree by day, ordered by
  `(event_type, timestamp, event_id)`, typed columns, Kafka partition and offset, an
  `ingested_at` default and an `is_bot` column from the simulator's own bot pattern) and
  five materialized views into AggregatingMergeTree tables: events per minute by type,
  category and device; distinct users and sessions per minute; article popularity per
  5 minutes; the session funnel (login -> view -> reaction); bot share per minute.
- `writer`: a batch is one columnar insert; per-item rejects for values that do not fit.
- `queries`: each aggregate read from its view, and recomputed from the distinct raw
  events (`uniqExact(event_id)`), parameterised by a time range.

Exactly once in the aggregates. Kafka delivers at least once: after a crash the consumer
replays up to a commit interval of messages, in batches whose boundaries need not match
the first attempt's. An insert-time view sees every insert, so a sum or a count() of rows
would count the replayed events twice. Two ways out were weighed:

- Insert deduplication tokens (`insert_deduplication_token` from topic, partition and
  offset range; `non_replicated_deduplication_window`;
  `deduplicate_blocks_in_dependent_materialized_views`). They drop a block only if the
  replayed batch is byte-for-byte the same range. A replay that starts at the committed
  offset but ends elsewhere (another poll size, a timer flush, a rebalance that moved a
  partition) carries a new token, and every event in the overlap is counted again. They
  also depend on a finite window, on the table engine and on server settings a user may
  not control (ClickHouse Cloud, managed services).
- Idempotent aggregate states (chosen). Every aggregate column is a state that a
  duplicate cannot change: `uniqExactState(event_id)` for counts of events, the sets of
  users and sessions, `min` of times and `anyLast` of fixed attributes. Re-inserting an
  event, alone or within any other batch, unions a set with itself. It holds on any
  server, with any batch boundaries, for ever, with no settings. The price is size: a
  count's state keeps the ids it counted (16 bytes per event per aggregate, before
  compression), so these tables are about as large as an id column of the raw table.

The raw table deduplicates by its sorting key when parts merge; until then readers count
`uniqExact(event_id)` or use FINAL.
"""
