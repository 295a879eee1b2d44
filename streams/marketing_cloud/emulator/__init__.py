"""An SFMC emulator (aiohttp) for tests and local runs; see ``README.md`` beside this file.

    emulator = await start_emulator(dataset)       # in-process, port 0
    ...
    await emulator.stop()

The client package never imports this one.
"""

from .server import Emulator, EmulatorThread, start_emulator
from .state import Config, load_dataset

__all__ = ["Config", "Emulator", "EmulatorThread", "load_dataset", "start_emulator"]
