"""Configuration from environment variables (prefix ``LEADS_``) and an optional TOML/JSON file.

Business units come from the file named by ``LEADS_CONFIG_FILE`` (a ``[[business_units]]`` array) or from
``LEADS_BUSINESS_UNITS`` (a JSON list). Secrets are ``SecretStr`` so they never print in reprs or errors.
"""

from __future__ import annotations

import json
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError


class ConfigError(Exception):
    """Settings are missing or invalid; the message names each bad field and never a secret value."""


class BusinessUnit(BaseModel):
    """One SFMC business unit; ``tenant`` names its entities (``mc.{tenant}.send*1``)."""

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    mid: int | None = None
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    auth_base_url: AnyHttpUrl
    click_log_key: str = Field(min_length=1)
    click_log_object_id: str = Field(min_length=1)
    skip_job_ids: frozenset[str] = frozenset()

    @field_validator("client_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @property
    def auth_base(self) -> str:
        """``auth_base_url`` ending in one ``/``: the token URL is ``{auth_base}v2/token``."""
        return str(self.auth_base_url).rstrip("/") + "/"


class Settings(BaseSettings):
    """Every setting: field ``x`` is ``LEADS_X``; arguments win over the environment, which wins over the
    config file. README's settings table says what each does."""

    model_config = SettingsConfigDict(env_prefix="LEADS_", extra="ignore")

    config_file: Path | None = None
    business_units: list[BusinessUnit] = Field(default_factory=list)

    # Kafka
    broker: str = "kafka://127.0.0.1:19092"
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    broker_username: str | None = None
    broker_password: SecretStr | None = None
    topic_partitions: int = Field(default=4, ge=1)
    """Partitions of the keyed topics and tables."""
    broker_session_timeout: float = Field(default=60.0, gt=0)
    """Seconds before the group evicts a worker that stopped heartbeating (e.g. killed)."""
    app_id: str = "leads-data-sync"
    topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    data_dir: Path = Path(".stack/worker-data")
    """Local state: the tables' RocksDB databases. Keep it across restarts, or a worker reads whole changelogs."""
    table_store: Literal["rocksdb://", "memory://"] = "rocksdb://"
    """Where tables live locally: RocksDB under ``data_dir`` (bounded memory, restarts read only the changelog
    tail), or memory (every start reads each changelog from its beginning)."""
    table_write_buffer_mb: int = Field(default=16, ge=1)
    """MiB of RocksDB memtables a worker's table databases hold together (``streams.tables.store``)."""
    table_block_cache_mb: int = Field(default=16, ge=1)
    """MiB of RocksDB block cache a worker's table databases share."""
    table_standby_replicas: int = Field(default=1, ge=0)
    """Copies of each table partition other workers keep up to date, to take over from a worker that dies."""

    # MongoDB (TLS and credentials go in the URL: ``mongodb+srv://user:pw@host/?tls=true``)
    mongo_url: SecretStr = SecretStr("mongodb://127.0.0.1:27018/?directConnection=true")
    mongo_database: str = "leads"
    legacy_tenant: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """The tenant of the BU that owns the previous system's documents (SPEC 4), adopted by ``leads-sync adopt``."""
    id_cache_size: int = Field(default=100_000, ge=1)
    """Document ``_id``s of the legacy tenant's entities kept in memory per process (LRU; about 250 bytes each)."""

    # Source and entities
    poll_click_log: bool = True
    """False where click rows reach ``click-rows`` only through the Kinesis or SQS edge."""
    poll_interval: float = Field(default=30.0, gt=0)
    """Seconds from the end of a click-log poll to the next."""
    lookback_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    poll_overlap_seconds: int = Field(default=3600, ge=0)
    page_size: int = Field(default=2500, ge=1, le=2500)
    """Rows a click-log Retrieve page."""
    in_batch_size: int = Field(default=500, ge=1, le=2500)
    """Ids an entity lookup's ``IN`` request."""
    fetch_window: float = Field(default=10.0, gt=0)
    """Seconds the send and subscriber lookups (the ids clicks name) gather requests at most before they fetch
    them. A click is written and acked without waiting for its send or subscriber, so a longer window delays the
    models, and fills more of each ``IN`` request (BENCHMARKS.md, 2026-12-03). It also delays a rebalance or a stop
    of a busy worker: faust waits for the requests a window holds to be handled."""
    chained_fetch_window: float = Field(default=1.0, gt=0)
    """Seconds the email and category lookups gather requests at most: each step of the chain that a fetched send
    starts (its email, the email's folder, the folder's parents) waits up to one such window."""
    refresh_seconds: int = Field(default=24 * 3600, gt=0)
    seen_rows_ttl_seconds: int = Field(default=14 * 24 * 3600, gt=0)
    reack_after_seconds: float = Field(default=300.0, ge=0)
    entity_fetch_attempts: int = Field(default=3, ge=1)
    sfmc_concurrency: int = Field(default=8, ge=1, le=64)
    """SFMC requests in flight at once per business unit and worker (lookups, polls and marks share them)."""

    # Sinks and acker
    sink_batch: int = Field(default=200, ge=1)
    """Records a sink batch holds at most."""
    sink_within: float = Field(default=0.1, gt=0)
    """Seconds a sink, or the acker, gathers a batch at most. faust's ``take`` waits this long after each batch
    unless the batch fills first, so the clicks sink and the acker add up to twice this to a row's read → ack
    latency (0.5 before 2026-12-06; 0.1 brought the half-rate p50 from 2.6 to 1.7 s at full size, the worker's
    CPU per row no higher, BENCHMARKS.md)."""
    test_fail_once: Path | None = None
    """Test-only, never set in a deployment: a marker file; while it does not exist, the clicks sink fails its
    first batch part-way through writing it and creates the file (``streams.clicks_sink.failing_once``)."""

    # AWS edges, each off unless configured (docs/edges.md). Credentials default to the AWS chain.
    aws_endpoint_url: AnyHttpUrl | None = None
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    kinesis_stream: str | None = None
    kinesis_poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between rounds over the shards."""
    kinesis_shard_refresh_seconds: float = Field(default=30.0, gt=0)
    kinesis_records_limit: int = Field(default=1000, ge=1, le=10000)
    """Records a ``GetRecords`` call asks for at most (its ``Limit``)."""
    kinesis_reads_per_tick: int = Field(default=5, ge=1)
    kinesis_initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    sqs_queue_url: str | None = None
    sqs_queue_name: str | None = None
    sqs_wait_seconds: int = Field(default=20, ge=0, le=20)
    sqs_visibility_timeout: int = Field(default=60, ge=2, le=43200)
    """Seconds of ``VisibilityTimeout`` asked on receive, and the extension step."""
    sqs_pollers: int = Field(default=1, ge=1, le=20)
    sqs_acks_queue: str | None = None

    # Process
    consumer_max_fetch_bytes: int = Field(default=512 * 1024, ge=64 * 1024)
    """Bytes fetched at most per partition per fetch (faust's ``consumer_max_fetch_size``, whose default is 4 MB):
    fetched records wait in memory, decoded, until an agent takes them, so this bounds a worker's backlog in
    memory. A record larger than this is still fetched, alone."""
    producer_compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = "none"
    """How the worker's producer compresses the record batches it sends (faust's ``producer_compression_type``);
    ``lz4``, ``zstd`` and ``snappy`` use cramjam. Consumers decompress whatever they read."""
    event_loop: Literal["aio", "uvloop"] = "uvloop"
    """The worker's event loop (faust's ``--loop``): ``uvloop`` (libuv, in C) or ``aio`` (asyncio's own, in
    Python). The loop's own work is a share of every record a worker consumes or produces (BENCHMARKS.md,
    2026-12-02)."""
    gc_threshold: int = Field(default=50_000, ge=700)
    """Allocations between runs of Python's cyclic garbage collector over its youngest generation (Python's
    default is 700; see ``streams.app.tune_gc``)."""

    # Web view
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_token: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``LEADS_CONFIG_FILE`` (no ``.env`` or secrets directory)."""
        return init_settings, env_settings, _ConfigFileSource(settings_cls, env_settings)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        for url in value.split(";"):
            if not url.startswith(("kafka://", "aiokafka://")) or len(url.split("://", 1)[1]) < 3:
                raise ValueError(f"{url!r} is not a kafka://host:port URL")
        return value

    @field_validator("mongo_url")
    @classmethod
    def _mongo_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("business_units")
    @classmethod
    def _unique_tenants(cls, units: list[BusinessUnit]) -> list[BusinessUnit]:
        tenants = [unit.tenant for unit in units]
        if len(set(tenants)) != len(tenants):
            raise ValueError("tenants must be unique across business units")
        return units

    def unit(self, tenant: str) -> BusinessUnit:
        """The business unit of ``tenant``; ``StopIteration`` when none is configured."""
        return next(unit for unit in self.business_units if unit.tenant == tenant)

    @property
    def tenants(self) -> frozenset[str]:
        """The tenants of the configured business units."""
        return frozenset(unit.tenant for unit in self.business_units)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads ``LEADS_CONFIG_FILE`` (TOML, or JSON by extension); environment variables win over it."""

    def __init__(self, settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._env = env

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self._env().get("config_file")
        if not path:
            return {}
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except ValueError as exc:
            raise ConfigError(f"config file {path} is not valid: {exc}") from None


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "settings"
        lines.append(f"  {where}: {item['msg']}")
    return "invalid settings:\n" + "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into a ``ConfigError`` that carries no input values."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # e.g. LEADS_BUSINESS_UNITS is not valid JSON
        raise ConfigError(f"invalid settings: {exc}") from None


@cache
def get_settings() -> Settings:
    """The process's settings, loaded once; ``ConfigError`` when they are missing or invalid."""
    return load_settings()
