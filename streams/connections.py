"""``Connections``: one process's MongoDB client, its document-id resolver, one Marketing Cloud client per
business unit and the AWS clients, each opened on first use and closed together by ``aclose``. A worker and
every command get theirs from one ``Connections`` built on their settings."""

from __future__ import annotations

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from streams.edges.aws import AwsClients
from streams.marketing_cloud import MarketingCloudClient
from streams.references import DocumentIds
from streams.settings import Settings


class Connections:
    """``mongo()``: the configured database; ``document_ids()``: its ``streams.references.DocumentIds``;
    ``marketing_cloud(tenant)``: that BU's client (``KeyError`` for a tenant not configured); ``aws``: the AWS
    clients (``await connections.aws.get("sqs")``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.aws = AwsClients(settings)
        self._clients: dict[str, MarketingCloudClient] = {}
        self._units = {unit.tenant: unit for unit in settings.business_units}
        self._mongo: AsyncDatabase | None = None
        self._document_ids: DocumentIds | None = None

    def mongo(self) -> AsyncDatabase:
        """The configured database (``LEADS_MONGO_URL``, ``LEADS_MONGO_DATABASE``), on one client."""
        if self._mongo is None:
            client: AsyncMongoClient = AsyncMongoClient(
                self.settings.mongo_url.get_secret_value(), tz_aware=True, serverSelectionTimeoutMS=10_000)
            self._mongo = client[self.settings.mongo_database]
        return self._mongo

    def document_ids(self) -> DocumentIds:
        """The ``_id``s references store, for the configured database (``streams.references``)."""
        if self._document_ids is None:
            self._document_ids = DocumentIds(self.mongo(), self.settings.legacy_tenant, self.settings.id_cache_size)
        return self._document_ids

    def marketing_cloud(self, tenant: str) -> MarketingCloudClient:
        """The client of ``tenant``'s business unit (``KeyError`` when it is not configured)."""
        if tenant not in self._clients:
            self._clients[tenant] = MarketingCloudClient(self._units[tenant],
                                                         max_concurrency=self.settings.sfmc_concurrency)
        return self._clients[tenant]

    async def aclose(self) -> None:
        """Close every connection opened so far."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._mongo is not None:
            await self._mongo.client.close()
            self._mongo = self._document_ids = None
        await self.aws.aclose()
