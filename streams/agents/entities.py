"""The resolver agents: sends, subscribers, emails and categories, each over its request topic.

Each gathers the requests of a short window and resolves them together (see ``streams.tables.entities``).
"""

from __future__ import annotations

from typing import Any

from streams.app import app, settings
from streams.tables.entities import Resolver, categories, emails, sends, subscribers


def resolver_agent(resolver: Resolver) -> Any:
    async def resolve(stream):
        async for requests in stream.take(settings.in_batch_size, within=settings.fetch_window):
            await resolver.resolve(requests)

    resolve.__name__ = resolve.__qualname__ = f"{resolver.kind}_resolver"
    return app.agent(resolver.topic, name=f"resolve-{resolver.kind}")(resolve)


send_agent = resolver_agent(sends)
subscriber_agent = resolver_agent(subscribers)
email_agent = resolver_agent(emails)
category_agent = resolver_agent(categories)
