"""HTTP shell of the client: the transport (aiohttp's client), token cache, concurrency limit, retries with
backoff, and counters.

aiohttp, not httpx: on loopback httpx's client took 2.2-2.6 ms of CPU a request and aiohttp's 0.49-0.69 ms
(``python -m bench.http_client``, both in one run; BENCHMARKS.md, 2026-12-02), and a worker sends one rowset
request per 50 rows it marks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
import orjson

from ..settings import BusinessUnit
from .auth import Token, parse_token, token_request
from .errors import AuthError, MalformedResponse, RetriesExhausted, SoapFault
from .soap import parse_fault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """One HTTP request: its method, absolute URL, body and headers."""

    method: str
    url: str
    content: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Reply:
    """One HTTP reply: its status, headers (looked up case-insensitively from ``AiohttpTransport``) and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def is_success(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status_code < 300


class TransportError(Exception):
    """No reply came: the connection was refused or broke, or the request timed out."""


Transport = Callable[[Request], Awaitable[Reply]]
"""Sends a request and returns its reply, whatever its status; raises ``TransportError`` when no reply came."""
Build = Callable[[Token], Request]
"""Builds a request with a token."""


@functools.cache
def environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy URL the environment gives ``scheme://host`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``), or
    None; read once per host. (aiohttp's own ``trust_env`` reads it, and netrc, in a thread on every request.)"""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies_environment().get(scheme)


class AiohttpTransport:
    """``Transport`` over one aiohttp client session (its connection pool), opened on the first request in the
    running loop; ``timeout``: seconds a request may take in all. Proxies come from the environment
    (``environment_proxy``)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, request: Request) -> Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = urllib.parse.urlsplit(request.url)
        try:
            async with self._session.request(request.method, request.url, data=request.content,
                                             headers=request.headers,
                                             proxy=environment_proxy(url.scheme, url.hostname or "")) as response:
                return Reply(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransportError(f"{type(exc).__name__} talking to SFMC") from None

    async def aclose(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter: uniform(0, min(cap, base·2^attempt)), in seconds like
    ``base`` and ``cap``."""
    return rng.uniform(0.0, min(cap, base * 2**attempt))


def retry_after_seconds(response: Reply) -> float | None:
    """The reply's ``Retry-After`` in seconds (at least 0); None when absent or not a number (say, a date)."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def json_or_none(response: Reply) -> Any:
    """The reply's JSON body; None when it is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def json_body(response: Reply) -> Any:
    """The reply's JSON body; ``MalformedResponse`` when it is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise MalformedResponse(f"HTTP {response.status_code} reply is not valid JSON") from None


class Session:
    """Sends requests for one business unit; ``stats`` counts requests, retries, 429s and refreshes.

    At most ``max_concurrency`` requests are in flight; a 429, a 5xx or a transport error is retried up to
    ``max_attempts`` sends in all, after ``Retry-After`` or ``backoff_delay(attempt, backoff_base, backoff_cap)``
    (seconds)."""

    def __init__(
        self,
        unit: BusinessUnit,
        transport: Transport,
        *,
        max_concurrency: int,
        max_attempts: int,
        backoff_base: float,
        backoff_cap: float,
    ) -> None:
        self.unit = unit
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "throttled": 0, "token_refreshes": 0,
                                      "token_failures": 0}
        self.token_error: str | None = None
        """Why the last token request was refused (HTTP status and SFMC's error code, never a secret); None once
        a token was granted."""
        self._transport = transport
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rng = random.Random()
        self._token: Token | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> Token:
        """The cached token, fetched anew (one fetch at a time) when there is none or it is due for refresh.
        Raises ``AuthError`` when the token endpoint refuses, ``MalformedResponse`` for an unreadable reply,
        ``RetriesExhausted`` when every attempt failed transiently."""
        token = self._token
        if token is not None and token.fresh(time.monotonic()):
            return token
        async with self._lock:
            token = self._token
            if token is None or not token.fresh(time.monotonic()):
                token = self._token = await self._fetch_token()
            return token

    def _invalidate(self, stale: Token) -> None:
        if self._token is stale:
            self._token = None

    async def _fetch_token(self) -> Token:
        url = f"{self.unit.auth_base}v2/token"
        body = orjson.dumps(token_request(self.unit))
        response = await self._send(lambda: Request("POST", url, body, {"Content-Type": "application/json"}))
        if response.status_code != 200:
            error = _token_error(response)
            self.stats["token_failures"] += 1
            self.token_error = f"HTTP {response.status_code} {error}".rstrip()
            raise AuthError(f"token request for client {self.unit.client_id} refused: {self.token_error}")
        self.stats["token_refreshes"] += 1
        self.token_error = None
        log.debug("new token for tenant %s", self.unit.tenant)
        return parse_token(json_body(response), time.monotonic())

    async def call(self, build: Build, *, soap: bool) -> Reply:
        """Send with a current token; on an expired token (REST 401, SOAP fault) refresh once and resend.

        Returns the first reply neither retried nor refusing the token, 4xx included. Raises what ``token``
        raises; ``AuthError`` when a fresh token is refused too; ``RetriesExhausted`` when every attempt failed
        transiently; ``SoapFault`` at once for a SOAP client fault in a 5xx reply."""
        refreshed = False
        while True:
            token = await self.token()
            response = await self._send(partial(build, token), soap=soap)
            if not _token_refused(response, soap):
                return response
            if refreshed:
                raise AuthError(f"a fresh token for client {self.unit.client_id} was refused")
            refreshed = True
            self._invalidate(token)

    async def _send(self, build: Callable[[], Request], *, soap: bool = False) -> Reply:
        attempt = 0
        while True:
            wait: float | None = None
            try:
                async with self._semaphore:
                    self.stats["requests"] += 1
                    response = await self._transport(build())
            except TransportError as exc:
                failure = str(exc)
            else:
                if response.status_code == 429:
                    self.stats["throttled"] += 1
                    wait = retry_after_seconds(response)
                    failure = "HTTP 429 (throttled)"
                elif response.status_code >= 500 and not _token_refused(response, soap):
                    failure = _server_failure(response, soap)
                else:
                    return response
            attempt += 1
            if attempt >= self._max_attempts:
                raise RetriesExhausted(attempt, failure)
            self.stats["retries"] += 1
            if wait is None:
                wait = backoff_delay(attempt, self._backoff_base, self._backoff_cap, self._rng)
            log.info("SFMC %s; retry %d in %.2fs", failure, attempt, wait)
            await asyncio.sleep(wait)


def _token_refused(response: Reply, soap: bool) -> bool:
    if not soap:
        return response.status_code == 401
    if response.status_code == 200 or response.status_code >= 400:
        fault = parse_fault(response.content) if b"Fault" in response.content else None
        return fault is not None and fault.token_expired
    return False


def _server_failure(response: Reply, soap: bool) -> str:
    """Describe a 5xx; a SOAP client fault (a bad request, not a server hiccup) is raised at once."""
    fault = parse_fault(response.content) if soap else None
    if fault is not None and fault.code.lower().endswith("client"):
        raise SoapFault(fault.code, fault.string)
    detail = f": {fault.string}" if fault is not None else ""
    return f"HTTP {response.status_code}{detail}"


def _token_error(response: Reply) -> str:
    reply = json_or_none(response)
    if isinstance(reply, dict):
        return str(reply.get("error") or reply.get("message") or "")
    return ""
