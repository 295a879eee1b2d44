"""The resolver agents: sends, subscribers, emails and categories, each over its request topic.

Each gathers the requests of a short window and resolves them together (see ``streams.tables.entities``).
"""

from __future__ import annotations

from typing import Any

from streams.app import app, settings
from streams.batches import each_batch
from streams.tables.entities import Resolver, categories, emails, sends, subscribers

REQUESTS_PER_WINDOW = 10_000
"""Request records gathered at most per window; the window (``fetch_window``) is what usually ends it."""


def resolver_agent(resolver: Resolver) -> Any:
    async def resolve(stream):
        await each_batch(stream, REQUESTS_PER_WINDOW, settings.fetch_window, resolver.resolve)

    resolve.__name__ = resolve.__qualname__ = f"{resolver.kind}_resolver"
    return app.agent(resolver.topic, name=f"resolve-{resolver.kind}")(resolve)


send_agent = resolver_agent(sends)
subscriber_agent = resolver_agent(subscribers)
email_agent = resolver_agent(emails)
category_agent = resolver_agent(categories)
