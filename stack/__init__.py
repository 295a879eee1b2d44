"""The local service stack for development and tests: Kafka (KRaft), a MongoDB-protocol server, moto
(SQS + Kinesis) and the SFMC emulator, on 127.0.0.1 with state under ``.stack/``.

Command line: ``python -m stack up|down|status|...`` (see ``stack/README.md``); tests use the functions
below through ``tests/conftest.py``.
"""

from .config import Config, load
from .control import Status, down, ensure, restart_service, start_service, status, stop_service, up
from .services import SERVICES, StackError

__all__ = [
    "SERVICES",
    "Config",
    "StackError",
    "Status",
    "down",
    "ensure",
    "load",
    "restart_service",
    "start_service",
    "status",
    "stop_service",
    "up",
]
