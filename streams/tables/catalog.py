"""Every table of a worker, declared on its app by ``declare_tables`` (faust wants them before the app starts):
name: key → value; partitions; written by.

- ``seen-rows``: ``click-rows`` record position → its rows' outcomes; partitioned as ``click-rows``; ingest.
- ``sends``, ``subscribers``, ``emails``, ``categories``: entity → ``EntitySnapshot``; partitioned as the kind's
  requests; the kind's resolver.
- ``{kind}-retries``: entity → ``streams.resolvers.Retry``; as the kind's table; the kind's resolver.
- ``send-acks``: send entity → acknowledgement codes seen with it; as send requests; the send resolver.
- ``send-links``: send or email entity → the send/email join state; one partition (as ``entity-changes``); the
  models sink.
- ``kinesis-checkpoints`` (global): ``{stream}:{shard}`` → last sequence number produced; one partition; Kinesis
  ingress.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT

from streams.entity_ids import EntityType
from streams.settings import Settings
from streams.tables.keyed import KeyedTable, keyed_table
from streams.tables.seen_rows import SeenRows, seen_rows_table
from streams.topic_records import EntitySnapshot
from streams.topics import Topics


@dataclass(frozen=True)
class Tables:
    """A worker's tables (see the module)."""

    seen_rows: SeenRows
    entities: dict[EntityType, KeyedTable]
    retries: dict[EntityType, KeyedTable]
    send_acks: KeyedTable
    send_links: KeyedTable
    kinesis_checkpoints: TableT | None
    """Only when Kinesis ingress is on (``LEADS_KINESIS_STREAM``)."""


def declare_tables(app: faust.App, settings: Settings, topics: Topics) -> Tables:
    """The tables of a worker with ``settings``, on ``app``; entity tables partitioned as ``topics``' requests."""
    kinds: tuple[EntityType, ...] = ("send", "subscriber", "email", "category")
    names: dict[EntityType, str] = {"send": "sends", "subscriber": "subscribers", "email": "emails",
                                    "category": "categories"}
    partitions = {kind: topics.request_partitions(kind) for kind in kinds}
    entities = {kind: keyed_table(app, names[kind], partitions=partitions[kind], value_type=EntitySnapshot,
                                  help=f"{names[kind]} snapshots by entity") for kind in kinds}
    # pending retries live in a table (changelog-backed), so a restart neither loses nor repeats them
    retries = {kind: keyed_table(app, f"{kind}-retries", partitions=partitions[kind],
                                 help=f"{kind} ids to fetch again: attempt, due time") for kind in kinds}
    checkpoints = None
    if settings.kinesis_stream:
        checkpoints = app.GlobalTable("kinesis-checkpoints", partitions=1, recovery_buffer_size=1, use_partitioner=True,
                                      help="last sequence number produced, by stream:shard")
    return Tables(
        seen_rows=seen_rows_table(app, float(settings.seen_rows_ttl_seconds),
                                  settings.data_dir / "row-index" / "seen-rows"),
        entities=entities,
        retries=retries,
        send_acks=keyed_table(app, "send-acks", partitions=partitions["send"], default=list,
                              help="acknowledgement codes seen with each send"),
        send_links=keyed_table(app, "send-links", default=dict, partitions=1, help="send/email join state"),
        kinesis_checkpoints=checkpoints,
    )
