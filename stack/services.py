"""The services of the local stack: how each is prepared, started and checked for readiness."""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import probes
from .config import HOST, KAFKA_VERSION, SECANTUS_MDB_VERSION, Config


def kraft_cluster_id() -> str:
    """A random KRaft cluster id: 16 random bytes, base64url without padding, as Kafka's ``Uuid.randomUuid``
    makes them, and likewise never starting with ``-`` (the storage tool would read such an id as an option:
    one in 64 ids did, and the broker's first format failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class StackError(Exception):
    """A service could not be prepared, started or stopped; the message names it and its log."""


Echo = Callable[[str], None]


def _venv_bin(name: str) -> str:
    """A console script of the running interpreter's environment (the venv), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def _run_logged(argv: list[str], log: Path, what: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}); see {log}")


@dataclass
class Service:
    name: str
    summary: str
    port_of: Callable[[Config], int]
    extra_logs: tuple[str, ...] = field(default=())

    def port(self, cfg: Config) -> int:
        return self.port_of(cfg)

    def log(self, cfg: Config) -> Path:
        return cfg.log_dir / f"{self.name}.log"

    def logs(self, cfg: Config) -> list[Path]:
        return [self.log(cfg), *(cfg.log_dir / extra for extra in self.extra_logs)]

    def available(self, cfg: Config) -> str | None:
        """None when the service can run here, else why it is left out."""
        return None

    def prepare(self, cfg: Config, echo: Echo) -> None:
        """Fetch, build, format: whatever must exist before the first start (cached)."""

    def command(self, cfg: Config) -> list[str]:
        raise NotImplementedError

    def env(self, cfg: Config) -> dict[str, str]:
        return dict(os.environ)

    def ready(self, cfg: Config) -> bool:
        raise NotImplementedError


# --- Kafka -------------------------------------------------------------------------------------------

_KAFKA_LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={log}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
"""


class Kafka(Service):
    """Apache Kafka, KRaft single node (broker + controller), from Maven Central jars, on Java 17+."""

    def __init__(self) -> None:
        super().__init__(
            "kafka", f"Apache Kafka {KAFKA_VERSION} (KRaft)", lambda c: c.kafka_port, ("kafka-server.log",)
        )

    @staticmethod
    def libs(cfg: Config) -> Path:
        return cfg.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"

    @staticmethod
    def home(cfg: Config) -> Path:
        return cfg.state_dir / "kafka"

    @staticmethod
    def java() -> str:
        java = shutil.which("java")
        if not java:
            raise StackError("kafka: java not found on PATH (the broker needs Java 17+)")
        return java

    def properties(self, cfg: Config) -> str:
        home = self.home(cfg)
        plain, controller = cfg.kafka_port, cfg.kafka_controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{controller}",
            "listeners": f"PLAINTEXT://{HOST}:{plain},CONTROLLER://{HOST}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{plain}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(home / "data"),
            "num.partitions": "4",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
            "log.retention.hours": "168",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def fetch_jars(self, cfg: Config, echo: Echo) -> Path:
        libs = self.libs(cfg)
        marker = libs / ".complete"
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(f"kafka: the broker jars are missing in {libs} and mvn is not on PATH")
        echo(f"kafka: fetching Kafka {KAFKA_VERSION} jars with Maven into {libs} ...")
        pom = Path(__file__).resolve().parent / "kafka" / "pom.xml"
        argv = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ]  # fmt: skip
        _run_logged(argv, cfg.log_dir / "kafka-fetch.log", "kafka: mvn dependency:copy-dependencies", cfg.root)
        if not any(libs.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise StackError(f"kafka: Maven finished but {libs} has no kafka_2.13 jar")
        marker.write_text("ok\n")
        return libs

    def prepare(self, cfg: Config, echo: Echo) -> None:
        libs = self.fetch_jars(cfg, echo)
        home = self.home(cfg)
        home.mkdir(parents=True, exist_ok=True)
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        (home / "server.properties").write_text(self.properties(cfg))
        (home / "log4j.properties").write_text(_KAFKA_LOG4J.format(log=cfg.log_dir / "kafka-server.log"))
        if (home / "data" / "meta.properties").exists():
            return
        cluster_id = kraft_cluster_id()
        argv = [
            self.java(), "-Xmx256m", f"-Dlog4j.configuration=file:{home / 'log4j.properties'}",
            "-cp", str(libs / "*"), "kafka.tools.StorageTool",
            "format", "-t", cluster_id, "-c", str(home / "server.properties"), "--ignore-formatted",
        ]  # fmt: skip
        echo("kafka: formatting the KRaft log directory ...")
        _run_logged(argv, self.log(cfg), "kafka: StorageTool format", cfg.root)

    def command(self, cfg: Config) -> list[str]:
        home = self.home(cfg)
        return [
            self.java(), "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{home / 'log4j.properties'}",
            f"-Dkafka.logs.dir={cfg.log_dir}",
            "-cp", str(self.libs(cfg) / "*"), "kafka.Kafka", str(home / "server.properties"),
        ]  # fmt: skip

    def ready(self, cfg: Config) -> bool:
        return probes.kafka_ready(cfg.kafka_port)


# --- MongoDB-protocol server ---------------------------------------------------------------------------


class Mongo(Service):
    """A MongoDB wire-protocol server: secantusd-py (PyPI secantusdb) or secantusd-rs (crate secantus-mdb)."""

    def __init__(self) -> None:
        super().__init__("mongo", "MongoDB protocol (secantus)", lambda c: c.mongo_port)

    @staticmethod
    def rust_binary(cfg: Config) -> Path:
        return cfg.cache_dir / "secantus-mdb" / "bin" / "secantusd-rs"

    def prepare(self, cfg: Config, echo: Echo) -> None:
        (cfg.state_dir / "mongo").mkdir(parents=True, exist_ok=True)
        if cfg.mongo_impl != "rs" or self.rust_binary(cfg).exists():
            return
        cargo = shutil.which("cargo")
        if not cargo:
            raise StackError(
                f"mongo: {self.rust_binary(cfg)} is missing and cargo is not on PATH; "
                "install Rust, or set LEADS_STACK_MONGO_IMPL=py to run secantusd-py (about 5x slower)"
            )
        echo(f"mongo: building secantus-mdb {SECANTUS_MDB_VERSION} with cargo (several minutes) ...")
        argv = [
            cargo, "install", "secantus-mdb", "--version", SECANTUS_MDB_VERSION, "--locked",
            "--ignore-rust-version", "--root", str(cfg.cache_dir / "secantus-mdb"),
        ]  # fmt: skip
        _run_logged(argv, cfg.log_dir / "mongo-build.log", "mongo: cargo install secantus-mdb", cfg.root)

    def command(self, cfg: Config) -> list[str]:
        storage = str(cfg.state_dir / "mongo")
        server = str(self.rust_binary(cfg)) if cfg.mongo_impl == "rs" else _venv_bin("secantusd-py")
        return [
            server, "--host", HOST, "--port", str(cfg.mongo_port),
            "--storage-path", storage, "--cache-size", "256M", "--log-level", "WARNING",
        ]  # fmt: skip

    def ready(self, cfg: Config) -> bool:
        return probes.port_open(cfg.mongo_port) and probes.mongo_ready(cfg.mongo_url)


# --- moto (SQS + Kinesis) ------------------------------------------------------------------------------


class Moto(Service):
    def __init__(self) -> None:
        super().__init__("moto", "moto server (SQS, Kinesis)", lambda c: c.moto_port)

    def command(self, cfg: Config) -> list[str]:
        return [_venv_bin("moto_server"), "-H", HOST, "-p", str(cfg.moto_port)]

    def ready(self, cfg: Config) -> bool:
        return probes.http_answers(f"{cfg.moto_url}/moto-api/")


# --- SFMC emulator (the sfmc_emulator package beside streams, run from the checkout) ----------------


class Emulator(Service):
    package = "sfmc_emulator"

    def __init__(self) -> None:
        super().__init__("emulator", "SFMC emulator", lambda c: c.emulator_port)

    def _module_dir(self, cfg: Config) -> Path:
        return cfg.root.joinpath(*self.package.split("."))

    def available(self, cfg: Config) -> str | None:
        if (self._module_dir(cfg) / "__main__.py").exists():
            return None
        return f"module {self.package} not found"

    def dataset(self, cfg: Config) -> Path:
        return Path(os.environ.get("LEADS_STACK_EMULATOR_DATASET", cfg.state_dir / "sample-dataset.json"))

    def prepare(self, cfg: Config, echo: Echo) -> None:
        dataset = self.dataset(cfg)
        directory = self._module_dir(cfg)
        has_generator = (directory / "generator.py").exists() or (directory / "generator").is_dir()
        if dataset.exists() or not has_generator:
            return
        dataset.parent.mkdir(parents=True, exist_ok=True)
        extra = shlex.split(os.environ.get("LEADS_STACK_GENERATOR_ARGS", "--seed 1 --end now"))
        argv = [sys.executable, "-m", f"{self.package}.generator", *extra, "--out", str(dataset)]
        echo(f"emulator: generating {dataset} ...")
        _run_logged(argv, cfg.log_dir / "emulator-generator.log", "emulator: dataset generator", cfg.root)

    def command(self, cfg: Config) -> list[str]:
        argv = [sys.executable, "-m", self.package, "--host", HOST, "--port", str(cfg.emulator_port)]
        if self.dataset(cfg).exists():
            argv += ["--dataset", str(self.dataset(cfg))]
        return argv

    def env(self, cfg: Config) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cfg.root), env.get("PYTHONPATH")]))
        return env

    def ready(self, cfg: Config) -> bool:
        return probes.http_answers(cfg.emulator_url)


SERVICES: dict[str, Service] = {svc.name: svc for svc in (Kafka(), Mongo(), Moto(), Emulator())}
