from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import MongoClient


@pytest.fixture(scope="module")
def client(mongo_url: str) -> Iterator[MongoClient]:
    mongo: MongoClient = MongoClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000)
    yield mongo
    mongo.close()


@pytest.fixture
def stages(client: MongoClient) -> Iterator[list]:
    """Stages a test started: their workers and emulators are stopped and their databases dropped after it."""
    started: list = []
    yield started
    for stage in started:
        try:
            stage.stop()
        finally:
            client.drop_database(stage.run.database)
