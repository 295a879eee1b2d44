"""Shared parts of the edge tests: a small clean dataset, the clicks it must produce, AWS clients."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import boto3
import orjson

from sfmc_emulator import Sizes, generate
from streams.clicks import RowRejected, parse_row
from streams.marketing_cloud.values import SERVER_TZ
from streams.settings import BusinessUnit, Settings, load_settings

Partition = set[tuple[frozenset[str], frozenset[str]]]


def unit_settings(*tenants: str, **overrides: Any) -> Settings:
    """Settings with a business unit for each tenant (credentials that reach no server) and ``overrides``."""
    units = [BusinessUnit(tenant=tenant, client_id="id", client_secret="secret", auth_base_url="http://127.0.0.1:9",
                          click_log_key="clicks", click_log_object_id="object") for tenant in tenants]
    return load_settings(business_units=units, **overrides)


class Produced:
    """A ``streams.edges.bridge.Bridge`` in memory: what was produced, or the error ``fail`` raises."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[tuple[list[Any], list[str], str]] = []
        self.fail = fail

    async def produce(self, messages: list[Any], rejected: list[Any], source: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.batches.append((list(messages), [exc.reason for exc, _, _ in rejected], source))

    def row_ids(self) -> list[str]:
        return [row["ID"] for messages, _, _ in self.batches for message in messages for row in message.rows]


def clean_dataset(seed: int, rows: int = 150) -> dict[str, Any]:
    """A one-BU dataset whose rows all become clicks (no skipped, bad, unknown, refused or twin rows)."""
    sizes = Sizes(rows=rows, sends=6, subscribers=50, emails=3, categories=3, days=2)
    dataset = generate(sizes, seed=seed, end=datetime.now(SERVER_TZ).replace(microsecond=0))
    unit = dataset["units"][0]
    sends = {send["ID"] for send in unit["sends"]}
    subscribers = {sub["ID"] for sub in unit["subscribers"]}
    kept, ids = [], set()
    for row in unit["rows"]:
        try:
            parse_row(unit["tenant"], row, frozenset(unit["skip_job_ids"]))
        except RowRejected:
            continue
        if row["JobID"] in sends and row["SubscriberID"] in subscribers and row["ID"] not in ids:
            ids.add(row["ID"])
            kept.append(row)
    unit.update(rows=kept, reject_row_ids=[])
    return dataset


def expected_partition(dataset: dict[str, Any]) -> Partition:
    """Row IDs as the click documents must group them: (guids, bots) per (day, send, url, subscriber)."""
    docs: dict[tuple[Any, ...], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for unit in dataset["units"]:
        for row in unit["rows"]:
            event = parse_row(unit["tenant"], row, frozenset(unit["skip_job_ids"]))
            guids, bots = docs[(unit["tenant"], event.day, row["JobID"], event.url_id, event.subscriber)]
            (bots if event.bot else guids).add(event.row_id)
    return {(frozenset(guids), frozenset(bots)) for guids, bots in docs.values()}


def actual_partition(db: Any) -> Partition:
    return {(frozenset(doc.get("guids", [])), frozenset(doc.get("bots", [])))
            for doc in db["event-email-clicks"].find({})}


def messages(unit: dict[str, Any], per_message: int = 3) -> list[bytes]:
    """The unit's rows as bridged messages, alternating the ``rows`` and the single ``row`` form."""
    out: list[bytes] = []
    rows, tenant, i = unit["rows"], unit["tenant"], 0
    while i < len(rows):
        if len(out) % 2:
            out.append(orjson.dumps({"tenant": tenant, "row": rows[i]}))
            i += 1
        else:
            out.append(orjson.dumps({"tenant": tenant, "rows": rows[i : i + per_message]}))
            i += per_message
    return out


def aws_client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def aws_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {"LEADS_AWS_ENDPOINT_URL": endpoint, "LEADS_AWS_ACCESS_KEY_ID": "testing",
            "LEADS_AWS_SECRET_ACCESS_KEY": "testing", "LEADS_AWS_REGION": "us-east-1",
            "LEADS_POLL_CLICK_LOG": "false",  # rows come from the edge only
            **extra}
