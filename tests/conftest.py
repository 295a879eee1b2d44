"""Shared fixtures for tests that use the local services (``python -m stack``).

A test that takes one of the service fixtures below, or is marked ``@pytest.mark.stack``, gets the
services started on demand (already running ones are reused) and is marked ``stack`` automatically, so
``pytest -m "not stack"`` runs only the tests that need nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

import stack

SERVICE_FIXTURES = {
    "stack_config",
    "kafka_bootstrap",
    "kafka_url",
    "mongo_url",
    "mongo_client",
    "mongo_db",
    "aws_endpoint_url",
    "sfmc_url",
    "stack_outage",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


def _ensure(*names: str) -> stack.Config:
    try:
        return stack.ensure(names or None)
    except stack.StackError as exc:
        pytest.fail(f"local services are not available:\n{exc}", pytrace=False)


@pytest.fixture(scope="session")
def stack_config() -> stack.Config:
    """Every service up; the stack's ports and URLs (``.urls()``, ``.kafka_url``, ``.mongo_url``...)."""
    return _ensure()


@pytest.fixture(autouse=True)
def _services_for_stack_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("stack"):
        request.getfixturevalue("stack_config")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """``127.0.0.1:19092``: bootstrap servers for aiokafka."""
    return _ensure("kafka").kafka_bootstrap


@pytest.fixture(scope="session")
def kafka_url(kafka_bootstrap: str) -> str:
    """``kafka://127.0.0.1:19092``: a faust broker URL (``LEADS_BROKER``)."""
    return f"kafka://{kafka_bootstrap}"


@pytest.fixture(scope="session")
def mongo_url() -> str:
    """``mongodb://127.0.0.1:27018/?directConnection=true`` (``LEADS_MONGO_URL``)."""
    return _ensure("mongo").mongo_url


@pytest.fixture(scope="session")
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    yield client
    await client.close()


@pytest.fixture
async def mongo_db(mongo_client: AsyncMongoClient) -> AsyncIterator[AsyncDatabase]:
    """A fresh, uniquely named database for this test (``mongo_db.name``), dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    yield mongo_client[name]
    await mongo_client.drop_database(name)


@pytest.fixture(scope="session")
def aws_endpoint_url() -> str:
    """``http://127.0.0.1:15000``: moto's SQS + Kinesis endpoint (``LEADS_AWS_ENDPOINT_URL``)."""
    return _ensure("moto").moto_url


@pytest.fixture(scope="session")
def sfmc_url() -> str:
    """``http://127.0.0.1:18765/``: the SFMC emulator's auth base URL; skips while the emulator is absent."""
    cfg = _ensure("emulator")
    current = stack.status(["emulator"])[0]
    if not current.up:
        pytest.skip(f"SFMC emulator not available: {current.note or current.state}")
    return cfg.emulator_url


class StackOutage:
    """Stop and start services during a test; whatever it stopped is started again after the test."""

    def __init__(self) -> None:
        self.stopped: set[str] = set()

    @staticmethod
    def _managed(name: str) -> None:
        current = stack.status([name])[0]
        if current.state == "external":
            pytest.skip(f"{name} on port {current.port} was not started by this checkout's stack")

    def stop(self, name: str) -> None:
        self._managed(name)
        self.stopped.add(name)
        stack.stop_service(name)

    def start(self, name: str) -> float:
        """Start ``name``; returns its startup time in seconds (0.0 if it was already up)."""
        return stack.start_service(name).get(name, 0.0)

    def restart(self, name: str) -> float:
        self._managed(name)
        self.stopped.add(name)
        return stack.restart_service(name).get(name, 0.0)

    def restore(self) -> None:
        if self.stopped:
            stack.ensure(sorted(self.stopped))


@pytest.fixture
def stack_outage(stack_config: stack.Config) -> Iterator[StackOutage]:
    """``stack_outage.stop("mongo")`` / ``.start("mongo")`` / ``.restart("kafka")`` inside a test."""
    outage = StackOutage()
    yield outage
    outage.restore()
