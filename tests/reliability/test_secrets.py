"""Issue 7.6 / SPEC 6.6: secrets (client secret, access tokens, AWS secret key, web token) never appear in
worker logs, dead letters or web views; the web view wants its token; bad settings fail without echoing
secrets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from streams.settings import ConfigError, load_settings
from tests.pipeline.harness import ROOT, read_topic
from tests.reliability.runs import begin, finish, paced, small_dataset, web_get

AWS_SECRET = "aws-SECRET-7e0c4b1f9a2d"
WEB_TOKEN = "web-TOKEN-51c0aa93"

PATHS = ["/", "/status", "/metrics", "/health", "/tables/send", "/tables/subscriber?limit=1000",
         "/entities/send/{send}", "/entities/subscriber/{subscriber}", "/entities/nope/x"]


def _secrets_in(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


@pytest.mark.stack
def test_no_secret_in_logs_or_web_views(stages: list, tmp_path: Path, client: MongoClient, kafka_url: str,
                                        mongo_url: str, kafka_bootstrap: str) -> None:
    dataset = small_dataset(seed=61, rows=1000)
    unit = dataset["units"][0]
    # short tokens, revoked ones, throttling and server errors: every path that logs an SFMC failure
    config = paced(token_lifetime=6, rate_429=0.05, rate_500=0.05, retry_after=0.5, seed=3)
    stage = begin(dataset, tmp_path, client, kafka_url, mongo_url, config=config,
                  LEADS_AWS_SECRET_ACCESS_KEY=AWS_SECRET, LEADS_AWS_ACCESS_KEY_ID="AKIATESTKEYID",
                  LEADS_WEB_TOKEN=WEB_TOKEN)
    stages.append(stage)
    httpx.post(f"{stage.url}_emulator/expire-tokens").raise_for_status()
    finish(stage, client)
    worker = stage.run.workers[0]
    tokens = list(stage.emulator.emulator._tokens)  # every access token the emulator issued
    assert len(tokens) >= 2, "the run should have used several tokens"
    secrets = {"client secret": unit["client_secret"], "AWS secret": AWS_SECRET, "web token": WEB_TOKEN,
               **{f"access token {i}": token for i, token in enumerate(tokens)}}

    send = next(iter(stage.run.expected.docs["email-sends"]))
    subscriber = next(iter(stage.run.expected.docs["identities"]))
    pages: dict[str, str] = {}
    for template in PATHS:
        path = template.format(send=send, subscriber=subscriber)
        reply = web_get(worker, path, WEB_TOKEN)
        assert reply.status_code in (200, 404), f"{path}: HTTP {reply.status_code} {reply.text[:300]}"
        pages[path] = reply.text
        if path != "/health" and path != "/":
            refused = web_get(worker, path)
            assert refused.status_code == 401, f"{path} answered {refused.status_code} without the token"
            wrong = web_get(worker, path, WEB_TOKEN + "x")
            assert wrong.status_code == 401, f"{path} answered {wrong.status_code} with a wrong token"
            pages[f"{path} (refused)"] = refused.text + wrong.text
    assert "leads_sfmc_requests_total" in pages["/metrics"]
    # "/" answers without the token (README: every endpoint but /health wants it); it must hold no data
    anonymous = web_get(worker, "/").text
    assert anonymous == pages["/"], "the page served without the token differs from the static page"
    assert unit["client_id"] not in anonymous and '"snapshot"' not in anonymous
    letters = asyncio.run(read_topic(kafka_bootstrap, f"{stage.run.prefix}.dead-letter"))
    worker.stop()  # the shutdown is logged too
    sources = {"worker log": worker.log(), "dead letters": json.dumps(letters), **pages}
    leaks = {where: found for where, text in sources.items() if (found := _secrets_in(text, secrets))}
    assert not leaks, f"secrets found: {leaks}"
    assert "INFO" in sources["worker log"] and len(sources["worker log"]) > 10_000


def _unit(**changes: Any) -> dict[str, Any]:
    unit = {"tenant": "ien", "client_id": "cid", "client_secret": "CLIENT-SECRET-x93", "auth_base_url":
            "https://mc.example.com/", "click_log_key": "Click_Log", "click_log_object_id": "obj"}
    unit.update(changes)
    return unit


@pytest.mark.parametrize("overrides", [
    {"business_units": [_unit(auth_base_url="not a url")]},
    {"business_units": [_unit(auth_base_url="ftp//mc.example.com")]},
    {"business_units": [_unit(auth_base_url="https://CLIENT-SECRET-x93@")]},
    {"business_units": [_unit(client_secret="")]},
    {"mongo_url": "http://user:MONGO-PASS-77@db.example.com/"},
    {"mongo_url": "MONGO-PASS-77"},
    {"broker": "http://broker:9092"},
    {"broker": "kafka://"},
    {"aws_endpoint_url": "not-a-url", "aws_secret_access_key": "AWS-SECRET-31"},
    {"web_port": 70000, "web_token": "WEB-TOKEN-12"},
], ids=lambda o: ",".join(o))
def test_settings_reject_wrong_values_without_echoing_secrets(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    text = f"{caught.value} {caught.value!r}"
    for secret in ("CLIENT-SECRET-x93", "MONGO-PASS-77", "AWS-SECRET-31", "WEB-TOKEN-12"):
        assert secret not in text, f"{secret} echoed: {text}"
    assert "invalid settings" in text


def test_settings_reprs_hide_secrets() -> None:
    settings = load_settings(business_units=[_unit()], mongo_url="mongodb://u:MONGO-PASS-77@h/",
                             aws_secret_access_key="AWS-SECRET-31", web_token="WEB-TOKEN-12")
    text = f"{settings!r} {settings} {settings.model_dump()} {settings.business_units[0]!r}"
    for secret in ("CLIENT-SECRET-x93", "MONGO-PASS-77", "AWS-SECRET-31", "WEB-TOKEN-12"):
        assert secret not in text, f"{secret} in {text[:2000]}"


def test_unparseable_business_units_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADS_BUSINESS_UNITS", json.dumps([_unit()])[:-3])
    with pytest.raises(ConfigError):
        load_settings()


def test_worker_with_bad_settings_exits_without_echoing_secrets() -> None:
    """A worker started with a wrong URL stops at once, naming the field, never printing the secret."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADS_")}
    env.update(LEADS_BUSINESS_UNITS=json.dumps([_unit(auth_base_url="ftp//bad")]),
               LEADS_MONGO_URL="http://user:MONGO-PASS-77@db/", LEADS_AWS_SECRET_ACCESS_KEY="AWS-SECRET-31")
    done = subprocess.run([sys.executable, "-m", "streams", "worker"], cwd=ROOT, env=env, capture_output=True,
                          timeout=60)
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode != 0
    assert "auth_base_url" in output and "mongo_url" in output, output[-2000:]
    for secret in ("CLIENT-SECRET-x93", "MONGO-PASS-77", "AWS-SECRET-31"):
        assert secret not in output, f"{secret} printed:\n{output[-3000:]}"
