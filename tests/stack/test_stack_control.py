"""Stopping and starting services (what outage tests do): data survives, status follows."""

from __future__ import annotations

import pytest
from pymongo import MongoClient

import stack
from stack import probes

pytestmark = pytest.mark.stack


def test_mongo_restart_keeps_data(stack_outage, stack_config):
    client: MongoClient = MongoClient(stack_config.mongo_url, serverSelectionTimeoutMS=10_000)
    database = client["stack_restart_check"]
    try:
        database.things.replace_one({"_id": 1}, {"_id": 1, "v": "kept"}, upsert=True)
        stack_outage.stop("mongo")
        assert stack.status(["mongo"])[0].state == "down"
        assert not probes.port_open(stack_config.mongo_port)
        assert stack_outage.start("mongo") > 0
        assert database.things.find_one({"_id": 1})["v"] == "kept"
    finally:
        client.drop_database("stack_restart_check")
        client.close()


def test_kafka_restart(stack_outage, stack_config):
    assert stack_outage.restart("kafka") > 0
    assert probes.kafka_ready(stack_config.kafka_port)
    assert stack.status(["kafka"])[0].state == "up"


def test_up_twice_leaves_running_services_alone(stack_config):
    before = {row.name: row.pid for row in stack.status()}
    assert stack.up(echo=lambda _: None) == {}
    assert {row.name: row.pid for row in stack.status()} == before
