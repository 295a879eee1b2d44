"""The faust application, built from settings: ``leads-sync worker -l info`` runs a worker; ``leads-sync --help``
lists commands.

``build(settings)`` makes the app (``create_app``) and wires on it, explicitly, the topology's agents, timers
and tasks (``streams.topology``), the web views (``streams.web.views``) and the operator commands
(``streams.commands``), all on one ``Connections``; nothing is found by autodiscovery, and nothing reads the
environment at import. ``main`` reads the settings (``LEADS_*``, ``LEADS_CONFIG_FILE``) and runs faust's command
line on the app built from them.
"""

from __future__ import annotations

import gc
import logging

import faust
import mode
import mode.loop

from streams.commands import register_commands
from streams.connections import Connections
from streams.kafka_clients import credentials
from streams.settings import Settings, get_settings
from streams.tables.store import STORE_URL, set_memory_budgets
from streams.topology import Worker, wire
from streams.transport import Transport
from streams.web.views import register_views

# aiokafka logs each produced message at DEBUG; faust's worker handler passes DEBUG records, so the
# formatting alone cost several percent of a worker's CPU.
logging.getLogger("aiokafka").setLevel(logging.INFO)


STORE_URLS = {"rocksdb://": STORE_URL, "memory://": "memory://"}
"""faust's store URL for each ``LEADS_TABLE_STORE``: RocksDB through our store (``streams.tables.store``)."""


class App(faust.App):
    """faust's App on our consumer transport (``streams.transport``)."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)


def create_app(settings: Settings) -> faust.App:
    """The faust app of ``settings``, with nothing on it yet (``build`` wires the rest)."""
    set_memory_budgets(settings.table_write_buffer_mb, settings.table_block_cache_mb)
    return App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=credentials(settings),
        store=STORE_URLS[settings.table_store],
        table_standby_replicas=settings.table_standby_replicas,
        topic_partitions=settings.topic_partitions,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
        topic_replication_factor=1,
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        autodiscover=False,
        # our views (streams.web) replace faust's: its /table and /router would bypass the web token
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        origin="streams",
        producer_linger_ms=5,
        producer_compression_type=None if settings.producer_compression == "none" else settings.producer_compression,
        consumer_max_fetch_size=settings.consumer_max_fetch_bytes,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=60.0,
        # an agent that raises stops the worker (exit status 1) for its supervisor to restart: faust's default
        # restarts the agent alone, whose failed batch then stays unacked, holding its partition's offsets
        # (and its rows' marks) until the next restart
        agent_supervisor=mode.CrashingSupervisor,
    )


def tune_gc(threshold: int) -> None:
    """Run Python's cyclic garbage collector over its youngest generation every ``threshold`` allocations
    (the older two after 20 and 10 runs of the one below). With Python's default (700) the collector, mostly
    its full collections, took 10-12% of a worker's CPU; with 50,000, about 2% at the same peak memory
    (BENCHMARKS.md, 2026-12-01)."""
    gc.set_threshold(threshold, 20, 10)


def build(settings: Settings) -> Worker:
    """An app of ``settings`` with its topology, web views and commands wired on one ``Connections`` (closed when
    the app shuts down)."""
    app = create_app(settings)
    connections = Connections(settings)
    worker = wire(app, settings, connections)
    register_views(worker)
    register_commands(worker)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types its receivers loosely
    async def close_connections(app_: object, **kwargs: object) -> None:
        await connections.aclose()

    return worker


def main() -> None:
    """``leads-sync``: faust's command line on the app built from this process's settings."""
    settings = get_settings()
    tune_gc(settings.gc_threshold)
    mode.loop.use(settings.event_loop)  # before anything makes a loop
    build(settings).app.main()
