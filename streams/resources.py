"""Per-process connections: one MongoDB client, its document-id resolver, and one Marketing Cloud client per
business unit."""

from __future__ import annotations

from functools import cache

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from streams.app import app, settings
from streams.marketing_cloud import MarketingCloudClient
from streams.references import DocumentIds


@cache
def mongo() -> AsyncDatabase:
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongo_url.get_secret_value(), tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    return client[settings.mongo_database]


@cache
def document_ids() -> DocumentIds:
    """The ``_id``s references store, for the configured database (``streams.references``)."""
    return DocumentIds(mongo(), settings.legacy_tenant, settings.id_cache_size)


@cache
def marketing_cloud(tenant: str) -> MarketingCloudClient:
    return MarketingCloudClient(settings.unit(tenant), max_concurrency=settings.sfmc_concurrency)


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types its receivers loosely
async def _close(app_: object, **kwargs: object) -> None:
    for tenant in {unit.tenant for unit in settings.business_units}:
        if marketing_cloud.cache_info().currsize:
            await marketing_cloud(tenant).aclose()
    if mongo.cache_info().currsize:
        await mongo().client.close()
