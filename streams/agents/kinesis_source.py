"""Kinesis ingress (on when ``LEADS_KINESIS_STREAM`` is set): every shard's records become ``click-rows``.

Only the leader worker reads, on a timer, shard after shard; a worker that loses the lead stops at its
next tick and the new leader resumes from the checkpoints. Checkpoints (the sequence number of the last
record produced, per shard) live in a global table, so whichever worker leads has all of them; a shard
is checkpointed only after Kafka acknowledged its records, so a restart re-reads at most the records of
one unfinished read (ingest drops the repeated row IDs). Resharding: a closed shard is read to its end
(checkpoint ``SHARD_END``) before its children start; the shard list is refreshed periodically and
whenever a shard ends. See docs/edges.md.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from streams.app import app, settings
from streams.bridge import aws, produce, tenants
from streams.edges import SHARD_END, iterator_request, parse_all, read_to_end, readable_shards
from streams.models import DeadLetterStage

log = logging.getLogger(__name__)

kinesis_status: dict[str, Any] = {}
"""Shards, records read, last error: for the status view."""


class ShardReader:
    """Reads the shards of one stream into ``click-rows``, checkpointing in ``checkpoints``."""

    def __init__(self, stream: str, checkpoints: Any) -> None:
        self.stream = stream
        self.checkpoints = checkpoints
        self.shards: list[dict[str, Any]] = []
        self.listed_at = 0.0
        self.iterators: dict[str, tuple[str, str | None]] = {}  # shard -> (iterator, checkpoint it follows)

    def key(self, shard_id: str) -> str:
        return f"{self.stream}:{shard_id}"

    def checkpoint(self, shard_id: str) -> str | None:
        value = self.checkpoints.get(self.key(shard_id))
        return str(value) if value else None

    def reset(self) -> None:
        self.iterators.clear()

    async def list_shards(self, kinesis: Any) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamName": self.stream}
        while True:
            reply = await kinesis.list_shards(**request)
            shards.extend(reply.get("Shards", []))
            if not reply.get("NextToken"):
                return shards
            # moto wants StreamName beside NextToken (AWS refuses both): send what each accepts
            request = {"NextToken": reply["NextToken"]} if not settings.aws_endpoint_url else {
                "StreamName": self.stream, "NextToken": reply["NextToken"]}

    async def tick(self) -> int:
        """One round over the readable shards; returns the records produced."""
        kinesis = await aws.get("kinesis")
        if not self.shards or time.monotonic() - self.listed_at > settings.kinesis_shard_refresh_seconds:
            self.shards = await self.list_shards(kinesis)
            self.listed_at = time.monotonic()
            kinesis_status["shards"] = [shard["ShardId"] for shard in self.shards]
        checkpoints = {s["ShardId"]: c for s in self.shards if (c := self.checkpoint(s["ShardId"]))}
        total = 0
        for shard_id in readable_shards(self.shards, checkpoints):
            for _ in range(settings.kinesis_reads_per_tick):
                count, more = await self.read(kinesis, shard_id)
                total += count
                if not more:
                    break
        return total

    def _shard(self, shard_id: str) -> dict[str, Any]:
        return next((shard for shard in self.shards if shard["ShardId"] == shard_id), {})

    async def _iterator(self, kinesis: Any, shard_id: str) -> str:
        checkpoint = self.checkpoint(shard_id)
        cached = self.iterators.get(shard_id)
        if cached and cached[1] == checkpoint:
            return cached[0]
        shard = self._shard(shard_id)
        initial = settings.kinesis_initial_position
        if shard.get("ParentShardId") or shard.get("AdjacentParentShardId"):
            initial = "TRIM_HORIZON"  # a child of a reshard: nothing of it has been read
        reply = await kinesis.get_shard_iterator(**iterator_request(self.stream, shard_id, checkpoint, initial))
        return str(reply["ShardIterator"])

    async def read(self, kinesis: Any, shard_id: str) -> tuple[int, bool]:
        """One GetRecords on ``shard_id``: produce, then checkpoint. Returns (records, more to read now)."""
        try:
            iterator = await self._iterator(kinesis, shard_id)
            reply = await kinesis.get_records(ShardIterator=iterator, Limit=settings.kinesis_records_limit)
        except ClientError as exc:
            self.iterators.pop(shard_id, None)  # expired or throttled: a fresh iterator next time
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "ExpiredIteratorException":
                log.warning("reading Kinesis shard %s of %s failed: %s", shard_id, self.stream, code)
                kinesis_status["last_error"] = code
            return 0, False
        records = reply.get("Records", [])
        checkpoint = self.checkpoint(shard_id)
        if records:
            messages, rejected = parse_all(((record["Data"], {
                "stream": self.stream, "shard": shard_id, "sequence": record["SequenceNumber"]})
                for record in records), tenants())
            await produce(messages, rejected, DeadLetterStage.KINESIS)
            checkpoint = records[-1]["SequenceNumber"]
            self.checkpoints[self.key(shard_id)] = checkpoint
            kinesis_status["records"] = kinesis_status.get("records", 0) + len(records)
        following = reply.get("NextShardIterator")
        if not following or (not records and read_to_end(self._shard(shard_id), checkpoint)):
            # closed by a reshard and read to its end: its children may start
            self.checkpoints[self.key(shard_id)] = SHARD_END
            self.iterators.pop(shard_id, None)
            self.listed_at = 0.0
            log.info("Kinesis shard %s of %s read to its end", shard_id, self.stream)
            return len(records), False
        self.iterators[shard_id] = (following, checkpoint)
        return len(records), bool(records) and reply.get("MillisBehindLatest", 0) > 0


def _ready() -> bool:
    return app.is_leader() and not app.rebalancing and not app.in_recovery


if settings.kinesis_stream:
    checkpoints = app.GlobalTable("kinesis-checkpoints", partitions=1, recovery_buffer_size=1,
                                  use_partitioner=True, help="last sequence number produced, by stream:shard")
    reader = ShardReader(settings.kinesis_stream, checkpoints)

    @app.timer(settings.kinesis_poll_interval, name="kinesis-source")
    async def read_kinesis() -> None:
        if not _ready():  # not the leader (or rebalancing): another worker reads; forget our iterators
            reader.reset()
            return
        try:
            await reader.tick()
            kinesis_status["last_error"] = None
        except Exception as exc:  # AWS or Kafka unavailable: nothing was checkpointed; retry next tick
            reader.reset()
            kinesis_status["last_error"] = type(exc).__name__
            log.warning("reading Kinesis stream %s failed: %s", settings.kinesis_stream, exc)
