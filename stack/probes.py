"""Readiness checks: each returns True only when the service really answers a request."""

from __future__ import annotations

import socket
import struct
import urllib.error
import urllib.request

from .config import HOST


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def kafka_ready(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    """A Metadata v1 request that names no topics: ready when it lists a broker and a controller."""
    client_id = b"leads-stack"
    request = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _read_exact(sock, 4))
            body = _read_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return False
    correlation_id, broker_count = struct.unpack_from(">ii", body, 0)
    if correlation_id != 7 or broker_count < 1:
        return False
    offset = 8
    for _ in range(broker_count):
        offset += 4  # node id
        (host_len,) = struct.unpack_from(">h", body, offset)
        offset += 2 + host_len + 4  # host, port
        (rack_len,) = struct.unpack_from(">h", body, offset)
        offset += 2 + max(rack_len, 0)
    (controller_id,) = struct.unpack_from(">i", body, offset)
    return controller_id >= 0


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """Any HTTP status counts: the server is up and speaking HTTP."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def mongo_ready(url: str, timeout: float = 2.0) -> bool:
    import pymongo  # the venv has it; imported late so `python -m stack status` stays fast
    from pymongo.errors import PyMongoError

    client: pymongo.MongoClient = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()
