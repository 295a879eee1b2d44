"""Where the stack lives and which ports it uses (environment overrides, fixed defaults below 32768)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

KAFKA_VERSION = "3.9.1"
SECANTUS_MDB_VERSION = "0.5.3-beta.196"


def _port(name: str, default: int) -> int:
    value = os.environ.get(f"LEADS_STACK_{name}_PORT", "")
    return int(value) if value.strip() else default


@dataclass(frozen=True)
class Config:
    """Paths and ports of one stack; ``load()`` reads them from the environment."""

    root: Path
    state_dir: Path
    cache_dir: Path
    kafka_port: int
    kafka_controller_port: int
    mongo_port: int
    moto_port: int
    emulator_port: int
    mongo_impl: str  # "rs": secantusd-rs (default, built with cargo), "py": secantusd-py from the venv
    timeout: float

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def kafka_url(self) -> str:
        return f"kafka://{self.kafka_bootstrap}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://{HOST}:{self.mongo_port}/?directConnection=true"

    @property
    def moto_url(self) -> str:
        return f"http://{HOST}:{self.moto_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://{HOST}:{self.emulator_port}/"

    def urls(self) -> dict[str, str]:
        return {
            "kafka": self.kafka_url,
            "kafka_bootstrap": self.kafka_bootstrap,
            "mongo": self.mongo_url,
            "aws": self.moto_url,
            "sfmc": self.emulator_url,
        }


def load() -> Config:
    root = Path(os.environ.get("LEADS_STACK_ROOT", ROOT)).resolve()
    return Config(
        root=root,
        state_dir=Path(os.environ.get("LEADS_STACK_DIR", root / ".stack")).resolve(),
        cache_dir=Path(os.environ.get("LEADS_STACK_CACHE", root / ".cache")).resolve(),
        kafka_port=_port("KAFKA", 19092),
        kafka_controller_port=_port("KAFKA_CONTROLLER", 19093),
        mongo_port=_port("MONGO", 27018),
        moto_port=_port("MOTO", 15000),
        emulator_port=_port("EMULATOR", 18765),
        mongo_impl=os.environ.get("LEADS_STACK_MONGO_IMPL", "rs"),
        timeout=float(os.environ.get("LEADS_STACK_TIMEOUT", "120")),
    )
