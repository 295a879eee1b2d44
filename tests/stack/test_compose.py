"""docker-compose.yml is consistent: everything the worker points at exists, with matching ports."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
WORKER = SERVICES["worker"]
ENV = WORKER["environment"]


def container_ports(service: str) -> set[int]:
    """Ports a service listens on inside the network: the container side of its port mappings."""
    return {int(str(mapping).rsplit(":", 1)[-1].split("/")[0]) for mapping in SERVICES[service].get("ports", [])}


def worker_config() -> dict:
    container_path = ENV["LEADS_CONFIG_FILE"]
    for volume in WORKER["volumes"]:
        source, target, *_ = volume.split(":")
        if target == container_path:
            return tomllib.loads((ROOT / source).read_text())
    raise AssertionError(f"{container_path} is not mounted into the worker")


def endpoints() -> list[tuple[str, str]]:
    urls = [
        ("LEADS_BROKER", ENV["LEADS_BROKER"]),
        ("LEADS_MONGO_URL", ENV["LEADS_MONGO_URL"]),
        ("LEADS_AWS_ENDPOINT_URL", ENV["LEADS_AWS_ENDPOINT_URL"]),
    ]
    urls += [(f"auth_base_url of {bu['tenant']}", bu["auth_base_url"]) for bu in worker_config()["business_units"]]
    return urls


@pytest.mark.parametrize(("what", "url"), endpoints())
def test_worker_endpoint_is_a_compose_service(what, url):
    parts = urlsplit(url)
    assert parts.hostname in SERVICES, f"{what} points at {parts.hostname!r}, not a compose service"
    assert parts.port in container_ports(parts.hostname), f"{what}: {parts.hostname} does not publish {parts.port}"
    assert parts.hostname in WORKER["depends_on"], f"the worker does not depend on {parts.hostname}"


def test_worker_waits_for_healthy_services():
    for name, condition in WORKER["depends_on"].items():
        assert condition == {"condition": "service_healthy"}, name
        assert SERVICES[name]["healthcheck"]["test"], f"{name} has no health check"


def test_every_service_but_the_worker_has_a_health_check():
    for name, service in SERVICES.items():
        if name != "worker":
            assert "test" in service.get("healthcheck", {}), name


def test_images_and_commands():
    assert SERVICES["kafka"]["image"] == "apache/kafka:3.9.1"
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert SERVICES["mongo"]["image"].startswith("mongo:8")
    assert "mongosh" in SERVICES["mongo"]["healthcheck"]["test"]
    assert set(SERVICES["localstack"]["environment"]["SERVICES"].split(",")) == {"sqs", "kinesis"}
    assert WORKER["command"] == ["leads-sync", "worker", "-l", "info"]
    assert SERVICES["sfmc-emulator"]["command"][0] == "sfmc-emulator"
    # one Dockerfile, two images: the worker's holds no emulator code, the emulator's no worker
    assert WORKER["build"] == {"context": ".", "target": "worker"}
    assert SERVICES["sfmc-emulator"]["build"] == {"context": ".", "target": "emulator"}
    assert WORKER["image"] != SERVICES["sfmc-emulator"]["image"]
    published = [str(p) for service in SERVICES.values() for p in service.get("ports", [])]
    assert all(mapping.startswith("127.0.0.1:") for mapping in published), published


def test_dockerfile_runs_as_non_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile
    user = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")


def test_worker_config_matches_the_emulator_dataset():
    from stack.compose_config import CONFIG, SEED, render

    assert "seed=1" in SERVICES["sfmc-emulator"]["command"][-1] and SEED == 1
    assert CONFIG.read_text() == render(), "stale: run `python -m stack.compose_config`"
