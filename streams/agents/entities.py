"""The resolver agents: sends, subscribers, emails and categories, each over its request topic.

Each gathers the requests of a short window and resolves them together (``streams.tables.entities``), with its
outputs on this worker's topics (``KafkaResolverOutputs``); a timer per kind requests its due retries again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from streams.app import app, settings
from streams.batches import each_batch, producer_ebb
from streams.entities import EntityType
from streams.models import DeadLetterStage, EntitySnapshot
from streams.resources import marketing_cloud
from streams.tables.entities import (
    CategoryResolver,
    EmailResolver,
    Resolver,
    ResolverSettings,
    SendResolver,
    categories_table,
    category_retries,
    email_retries,
    emails_table,
    send_acks_table,
    send_retries,
    sends_table,
    subscriber_retries,
    subscribers_table,
)
from streams.topics import (
    Pending,
    publish_snapshots,
    request_entities,
    request_partitions,
    request_topics,
    send_dead_letter,
)

REQUESTS_PER_WINDOW = 10_000
"""Request records gathered at most per window; the window (``fetch_window``) is what usually ends it."""


class KafkaResolverOutputs:
    """``streams.tables.entities.Outputs`` on the topics: ``entity-changes``, the request topics, ``dead-letter``
    (stage ``resolve-{kind}``, keyed by the entity, source ``{"entity": entity}``), and the room in this worker's
    producer buffer."""

    async def snapshots(self, snapshots: Sequence[EntitySnapshot]) -> Pending:
        return await publish_snapshots(snapshots)

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[int | str],
                              attempt: int = 0) -> Pending:
        return await request_entities(tenant, kind, ids, attempt=attempt)

    async def dead_letter(self, tenant: str, kind: EntityType, key: str, reason: str) -> Pending:
        return [await send_dead_letter(key, DeadLetterStage(f"resolve-{kind}"), reason, tenant, {"entity": key})]

    async def room(self) -> None:
        await producer_ebb(app)


outputs = KafkaResolverOutputs()
limits = ResolverSettings(settings.in_batch_size, settings.refresh_seconds, settings.entity_fetch_attempts)
sends = SendResolver("send", sends_table, send_retries, request_partitions("send"), marketing_cloud, outputs, limits,
                     acks=send_acks_table)
subscribers = Resolver("subscriber", subscribers_table, subscriber_retries, request_partitions("subscriber"),
                       marketing_cloud, outputs, limits)
emails = EmailResolver("email", emails_table, email_retries, request_partitions("email"), marketing_cloud, outputs,
                       limits)
categories = CategoryResolver("category", categories_table, category_retries, request_partitions("category"),
                              marketing_cloud, outputs, limits)


def resolver_agent(resolver: Resolver) -> Any:
    """The agent that feeds ``resolver`` its request topic by windows, and the timer that requeues its due
    retries every second (over the topic's partitions this worker consumes)."""
    topic = request_topics[resolver.kind]

    async def resolve(stream):
        await each_batch(stream, REQUESTS_PER_WINDOW, settings.fetch_window, resolver.resolve)

    async def requeue_due() -> None:
        name = topic.get_topic_name()
        await resolver.requeue_due({tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name})

    app.timer(1.0, name=f"requeue-{resolver.kind}")(requeue_due)
    resolve.__name__ = resolve.__qualname__ = f"{resolver.kind}_resolver"
    return app.agent(topic, name=f"resolve-{resolver.kind}")(resolve)


send_agent = resolver_agent(sends)
subscriber_agent = resolver_agent(subscribers)
email_agent = resolver_agent(emails)
category_agent = resolver_agent(categories)
