"""An SFMC emulator (aiohttp) for tests, benchmarks and local runs; see ``README.md`` beside this file.

    emulator = await start_emulator(generate(Sizes(rows=200), seed=1))   # in-process, port 0
    ...                                                                  # HTTP at emulator.url
    await emulator.stop()

A package of its own, not part of the worker's distribution: it has its own reading of SFMC's wire formats
(:mod:`.wire`) and imports nothing from ``streams``, so a misreading in the client is not mirrored here.
The names below are its public API; the modules behind them are private.
"""

from .cli import build_parser, config_from, main
from .generator import ROW_KINDS, Sizes, generate
from .server import Emulator, EmulatorThread, Hooks, start_emulator
from .state import Config, Unit, load_dataset

__all__ = [
    "ROW_KINDS",
    "Config",
    "Emulator",
    "EmulatorThread",
    "Hooks",
    "Sizes",
    "Unit",
    "build_parser",
    "config_from",
    "generate",
    "load_dataset",
    "main",
    "start_emulator",
]
