"""Kinesis ingress (on when ``LEADS_KINESIS_STREAM`` is set): every shard's records become ``click-rows``.

Only the leader worker reads, on a timer (``streams.topology``), shard after shard; a worker that loses the lead
stops at its next tick and the new leader resumes from the checkpoints. Checkpoints (the sequence number of the
last record produced, per shard) live in a global table, so whichever worker leads has all of them; a shard is
checkpointed only after Kafka acknowledged its records, so a restart re-reads at most the records of one
unfinished read (ingest drops the repeated row IDs). Resharding: a closed shard is read to its end (checkpoint
``SHARD_END``) before its children start; the shard list is refreshed periodically and whenever a shard ends.
See docs/edges.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from streams.edges.aws import AwsClients
from streams.edges.bridge import Bridge
from streams.edges.formats import parse_all
from streams.settings import Settings
from streams.topic_records import DeadLetterStage

log = logging.getLogger(__name__)

SHARD_END = "SHARD_END"
"""Checkpoint value of a shard that was read to its end (closed by a reshard)."""


def shard_parents(shard: Mapping[str, Any]) -> list[str]:
    """The ids of a shard's parents (``ListShards``' ``ParentShardId``, ``AdjacentParentShardId``), if any."""
    return [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]


def readable_shards(shards: Sequence[Mapping[str, Any]], checkpoints: Mapping[str, str]) -> list[str]:
    """Shard ids to read now, in list order: not finished, and every parent still listed is finished.

    A parent that is no longer listed (past retention) counts as finished, so its children are read.
    Children of a reshard thus start only after their parents' last records were produced, which keeps
    each partition key's records in order.
    """
    listed = {shard["ShardId"] for shard in shards}
    ready = []
    for shard in shards:
        shard_id = shard["ShardId"]
        if checkpoints.get(shard_id) == SHARD_END:
            continue
        if all(checkpoints.get(p) == SHARD_END for p in shard_parents(shard) if p in listed):
            ready.append(shard_id)
    return ready


def read_to_end(shard: Mapping[str, Any], checkpoint: str | None) -> bool:
    """A closed shard (it has an ending sequence number) whose checkpoint reached that number.

    Kinesis itself signals the end with no ``NextShardIterator``; this also covers servers that keep
    handing out iterators for a closed shard (moto does).
    """
    ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
    if not ending or not checkpoint or checkpoint == SHARD_END:
        return False
    return int(checkpoint) >= int(ending)


def iterator_request(stream: str, shard_id: str, checkpoint: str | None, initial: str) -> dict[str, str]:
    """``GetShardIterator`` arguments: just after the checkpoint, else the configured initial position.

    A shard created by a reshard always starts at its beginning (``TRIM_HORIZON``): nothing in it was
    read yet, whatever the initial position says; the caller passes ``initial`` accordingly.
    """
    if checkpoint:
        return {"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": checkpoint}
    return {"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": initial}


class ShardReader:
    """Reads the shards of ``settings.kinesis_stream`` into ``click-rows`` (``bridge``), checkpointing in
    ``checkpoints`` (``{stream}:{shard}`` → sequence number or ``SHARD_END``)."""

    def __init__(self, settings: Settings, aws: AwsClients, bridge: Bridge,
                 checkpoints: MutableMapping[str, Any]) -> None:
        self.settings = settings
        self.stream = settings.kinesis_stream or ""
        self.aws = aws
        self.bridge = bridge
        self.tenants: Collection[str] = settings.tenants
        self.checkpoints = checkpoints
        self.shards: list[dict[str, Any]] = []
        self.listed_at = 0.0
        self.iterators: dict[str, tuple[str, str | None]] = {}  # shard -> (iterator, checkpoint it follows)

    def key(self, shard_id: str) -> str:
        """The checkpoint key of a shard: ``{stream}:{shard}``."""
        return f"{self.stream}:{shard_id}"

    def checkpoint(self, shard_id: str) -> str | None:
        """The shard's checkpoint: the sequence number last produced, ``SHARD_END``, or None (not read yet)."""
        value = self.checkpoints.get(self.key(shard_id))
        return str(value) if value else None

    def reset(self) -> None:
        """Forget the shard iterators (another worker may read meanwhile)."""
        self.iterators.clear()

    async def list_shards(self, kinesis: Any) -> list[dict[str, Any]]:
        """Every shard of the stream (``ListShards``, all pages)."""
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamName": self.stream}
        while True:
            reply = await kinesis.list_shards(**request)
            shards.extend(reply.get("Shards", []))
            if not reply.get("NextToken"):
                return shards
            request = self.aws.next_shards_request(self.stream, reply["NextToken"])

    async def tick(self) -> int:
        """One round over the readable shards; returns the records produced. Raises what AWS or Kafka raise,
        with nothing of the failed read checkpointed."""
        settings = self.settings
        kinesis = await self.aws.get("kinesis")
        if not self.shards or time.monotonic() - self.listed_at > settings.kinesis_shard_refresh_seconds:
            self.shards = await self.list_shards(kinesis)
            self.listed_at = time.monotonic()
        checkpoints = {s["ShardId"]: c for s in self.shards if (c := self.checkpoint(s["ShardId"]))}
        total = 0
        for shard_id in readable_shards(self.shards, checkpoints):
            for _ in range(settings.kinesis_reads_per_tick):
                count, more = await self.read(kinesis, shard_id)
                total += count
                if not more:
                    break
        return total

    async def tick_logged(self) -> None:
        """``tick``, a failure (AWS or Kafka unavailable) logged and the iterators reset: nothing of the failed
        read was checkpointed, and the next tick reads it again."""
        try:
            await self.tick()
        except Exception as exc:
            self.reset()
            log.warning("reading Kinesis stream %s failed: %s", self.stream, exc)

    def _shard(self, shard_id: str) -> dict[str, Any]:
        return next((shard for shard in self.shards if shard["ShardId"] == shard_id), {})

    async def _iterator(self, kinesis: Any, shard_id: str) -> str:
        checkpoint = self.checkpoint(shard_id)
        cached = self.iterators.get(shard_id)
        if cached and cached[1] == checkpoint:
            return cached[0]
        shard = self._shard(shard_id)
        initial = self.settings.kinesis_initial_position
        if shard.get("ParentShardId") or shard.get("AdjacentParentShardId"):
            initial = "TRIM_HORIZON"  # a child of a reshard: nothing of it has been read
        reply = await kinesis.get_shard_iterator(**iterator_request(self.stream, shard_id, checkpoint, initial))
        return str(reply["ShardIterator"])

    async def read(self, kinesis: Any, shard_id: str) -> tuple[int, bool]:
        """One GetRecords on ``shard_id``: produce, then checkpoint. Returns (records, more to read now)."""
        try:
            iterator = await self._iterator(kinesis, shard_id)
            reply = await kinesis.get_records(ShardIterator=iterator, Limit=self.settings.kinesis_records_limit)
        except ClientError as exc:
            self.iterators.pop(shard_id, None)  # expired or throttled: a fresh iterator next time
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "ExpiredIteratorException":
                log.warning("reading Kinesis shard %s of %s failed: %s", shard_id, self.stream, code)
            return 0, False
        records = reply.get("Records", [])
        checkpoint = self.checkpoint(shard_id)
        if records:
            messages, rejected = parse_all(((record["Data"], {
                "stream": self.stream, "shard": shard_id, "sequence": record["SequenceNumber"]})
                for record in records), self.tenants)
            await self.bridge.produce(messages, rejected, DeadLetterStage.KINESIS)
            checkpoint = records[-1]["SequenceNumber"]
            self.checkpoints[self.key(shard_id)] = checkpoint
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
