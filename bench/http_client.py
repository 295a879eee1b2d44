"""CPU per SFMC-sized request of two HTTP clients, httpx and aiohttp, in one run: ``python -m bench.http_client``.

A small aiohttp server in a subprocess answers each POST with a short JSON reply, over loopback; this process
sends ``--requests`` requests one after another with a body of one rowset request (50 rows' keys, as marking
sends), each client on asyncio's loop and on uvloop, alternately for ``--rounds`` rounds, and prints the
client's CPU time (``time.process_time``: this process only, not the server) per request and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import orjson
import uvloop

SERVER = """
import sys
from aiohttp import web

async def answer(request):
    await request.read()
    return web.json_response({"requestId": "r", "resultMessages": []})

app = web.Application()
app.router.add_post("/rowset", answer)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
BODY = orjson.dumps([{"keys": {"ID": f"row-{i}", "JobID": "607000", "SubscriberID": str(i),
                               "EventDate": "9/7/2020 7:31:04 AM", "IsUnique": "True", "ListID": "3"},
                      "values": {"Processed": "True"}} for i in range(50)])
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer token"}
WARM_UP = 50


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def with_httpx(url: str, requests: int) -> float:
    """µs of CPU per request with one ``httpx.AsyncClient``."""
    async with httpx.AsyncClient() as client:
        async def send() -> None:
            reply = await client.post(url, content=BODY, headers=HEADERS)
            orjson.loads(reply.content)
        return await _timed(send, requests)


async def with_aiohttp(url: str, requests: int) -> float:
    """µs of CPU per request with one ``aiohttp.ClientSession``."""
    async with aiohttp.ClientSession() as session:
        async def send() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as reply:
                orjson.loads(await reply.read())
        return await _timed(send, requests)


async def _timed(send: Callable[[], Awaitable[None]], requests: int) -> float:
    for _ in range(WARM_UP):
        await send()
    started = time.process_time()
    for _ in range(requests):
        await send()
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    url = f"http://127.0.0.1:{port}/rowset"
    try:
        for _ in range(100):
            try:
                httpx.post(url, content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        runners = {"asyncio": asyncio.run, "uvloop": uvloop.run}
        for round_ in range(1, args.rounds + 1):
            for loop, run in runners.items():
                slow = run(with_httpx(url, args.requests))
                fast = run(with_aiohttp(url, args.requests))
                print(f"round {round_}, {loop}: httpx {slow:.0f} µs CPU/request, aiohttp {fast:.0f} µs CPU/request, "
                      f"httpx / aiohttp {slow / fast:.2f}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
