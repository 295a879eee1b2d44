"""The emulator's aiohttp application: token, SOAP Retrieve, asset query, rowsets, and admin endpoints."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .objects import CLICK_LOG_COLUMNS, ROW_KEYS, requestable
from .soap import BadRequest, RetrieveCall, fault, read_request, retrieve_reply
from .state import Config, Counts, Unit
from .wire import parse_soap_date
from .wsdl import wsdl

JSON = "application/json"


@dataclass
class _Token:
    unit: Unit
    expires_at: float


@dataclass
class _Pending:
    unit: Unit
    object_type: str
    properties: list[str]
    records: list[dict[str, Any]]
    page_size: int


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data), status=status, content_type=JSON, headers=headers)


def _rest_error(status: int, errorcode: int, message: str, **extra: Any) -> web.Response:
    return _json({"message": message, "errorcode": errorcode, "documentation": "", **extra}, status)


class Hooks:
    """What a caller may watch or shape in a running emulator (``bench.emulator`` does); subclass and
    override. The defaults do nothing: every click-log row is visible, nothing is recorded."""

    def click_rows(self, unit: Unit) -> list[dict[str, str]]:
        """The click-log rows of ``unit`` a Retrieve sees now (the row dicts themselves, so marks reach them)."""
        return unit.rows

    def rows_returned(self, unit: Unit, rows: Sequence[dict[str, str]]) -> None:
        """Called with each page of click-log rows a Retrieve (or ContinueRequest) returns."""

    def row_marked(self, unit: Unit, row: dict[str, str]) -> None:
        """Called with each click-log row after a rowset update changed it."""


class Emulator:
    """An SFMC emulator over one dataset (several BUs); ``await start()`` returns its base URL."""

    def __init__(self, dataset: dict[str, Any], config: Config | None = None, hooks: Hooks | None = None) -> None:
        self.dataset = dataset
        self.config = config or Config()
        self.hooks = hooks or Hooks()
        self.units = [Unit(data) for data in dataset.get("units", [])]
        self.counts = Counts()
        self._tokens: dict[str, _Token] = {}
        self._pending: dict[str, _Pending] = {}
        self._rng = random.Random(self.config.seed)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v2/token", self._token)
        app.router.add_post("/soap/Service.asmx", self._soap)
        app.router.add_get("/soap/etframework.wsdl", self._wsdl)
        app.router.add_get("/soap/Service.asmx", self._wsdl)
        app.router.add_post("/rest/asset/v1/content/assets/query", self._asset_query)
        app.router.add_post("/rest/hub/v1/dataevents/{ident}/rowset", self._rowset)
        app.router.add_get("/_emulator/config", self._get_config)
        app.router.add_post("/_emulator/config", self._set_config)
        app.router.add_get("/_emulator/counts", self._get_counts)
        app.router.add_get("/_emulator/returns", self._get_returns)
        app.router.add_post("/_emulator/reset-counts", self._reset_counts)
        app.router.add_post("/_emulator/expire-tokens", self._expire_tokens)
        app.router.add_get("/_emulator/rows", self._rows)
        return app

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def soap_url(self) -> str:
        return f"{self.url}soap/"

    @property
    def rest_url(self) -> str:
        return f"{self.url}rest/"

    # --- helpers ----------------------------------------------------------------------------------

    async def _latency(self, kind: str) -> None:
        delay = self.config.latency_ms.get(kind, 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)

    def _injected(self, unit: Unit, *, soap: bool) -> web.Response | None:
        config = self.config
        throttle = not soap and (config.fail_next_429 > 0 or self._rng.random() < config.rate_429)
        if throttle:
            config.fail_next_429 = max(0, config.fail_next_429 - 1)
            self.counts.add(unit.client_id, "http429")
            headers = {"Retry-After": f"{config.retry_after:g}"}
            return _json({"message": "Rate limit exceeded", "errorcode": 50200, "documentation": ""}, 429, headers)
        if config.fail_next_500 > 0 or self._rng.random() < config.rate_500:
            config.fail_next_500 = max(0, config.fail_next_500 - 1)
            self.counts.add(unit.client_id, "http500")
            if soap:
                body = fault("Server", "Server was unable to process request. ---> Too many requests.")
                return web.Response(body=body, status=500, content_type="text/xml", charset="utf-8")
            return _rest_error(500, 0, "Internal Server Error")
        return None

    def _unit_for(self, token: str | None) -> tuple[Unit | None, bool]:
        """(unit, expired) for an access token."""
        entry = self._tokens.get(token or "")
        if entry is None:
            return None, False
        return entry.unit, time.monotonic() >= entry.expires_at

    # --- auth -------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        await self._latency("token")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
            return _json({"error": "invalid_request", "error_description": "Bad request."}, 400)
        unit = next((u for u in self.units if u.client_id == body.get("client_id")), None)
        if unit is None or not secrets.compare_digest(unit.client_secret, str(body.get("client_secret", ""))):
            return _json({"error": "invalid_client", "error_description": "Client authentication failed."}, 401)
        account = body.get("account_id")
        if account is not None and unit.mid is not None and str(account) != str(unit.mid):
            return _json({"error": "unauthorized_client", "error_description": "Unauthorized account."}, 401)
        self.counts.add(unit.client_id, "token")
        token = secrets.token_urlsafe(32)
        lifetime = self.config.token_lifetime
        self._tokens[token] = _Token(unit, time.monotonic() + lifetime)
        return _json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
                "scope": "data_extensions_read data_extensions_write email_read list_and_subscribers_read",
                "soap_instance_url": self.soap_url,
                "rest_instance_url": self.rest_url,
            }
        )

    # --- SOAP -------------------------------------------------------------------------------------

    async def _wsdl(self, request: web.Request) -> web.Response:
        return web.Response(text=wsdl(f"{self.soap_url}Service.asmx"), content_type="text/xml")

    async def _soap(self, request: web.Request) -> web.Response:
        await self._latency("soap")

        def reply(body: bytes, status: int = 200) -> web.Response:
            return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")

        actor = f"{self.soap_url}Service.asmx"
        try:
            call = read_request(await request.read())
        except BadRequest as exc:
            return reply(fault("Client", str(exc), actor), 500)
        unit, expired = self._unit_for(call.token)
        if unit is None:
            return reply(fault("Client", "Login Failed", actor), 500)
        if expired:
            return reply(fault("Client", "Token Expired", actor), 500)
        injected = self._injected(unit, soap=True)
        if injected is not None:
            return injected
        if call.continue_id:
            self.counts.add(unit.client_id, "soap:continue")
            return reply(self._continue(unit, call.continue_id))
        return reply(self._retrieve(unit, call))

    def _retrieve(self, unit: Unit, call: RetrieveCall) -> bytes:
        object_type = call.object_type or ""
        base = object_type.split("[", 1)[0]
        self.counts.add(unit.client_id, f"soap:{base or 'unknown'}")
        request_id = str(uuid.uuid4())
        if base == "DataExtensionObject":
            key = object_type[len(base) + 1 : -1] if object_type.endswith("]") else ""
            table: list[dict[str, Any]] | None = self.hooks.click_rows(unit) if key == unit.click_log_key else None
            allowed = frozenset(CLICK_LOG_COLUMNS)
        else:
            table = unit.objects.get(object_type)
            allowed = requestable(object_type) if table is not None else frozenset()
        if table is None:
            status = (
                f"Error: Unable to find a handler for object type: {object_type}. "
                "Object types are case-sensitive, check spelling."
            )
            return retrieve_reply(status, request_id, object_type, [], [])
        bad = [prop for prop in call.properties if prop not in allowed]
        if bad or not call.properties:
            status = (
                f"Error: The Request Property(s) {', '.join(bad) or '(none)'} do not match with the fields "
                f"of {base} retrieve"
            )
            return retrieve_reply(status, request_id, object_type, [], [])
        predicate = call.predicate
        records = [record for record in table if predicate is None or predicate(record)]
        size = min(call.batch_size or 2500, self.config.page_size, 2500)
        pending = _Pending(unit, object_type, call.properties, records, max(1, size))
        return self._page(request_id, pending)

    def _page(self, request_id: str, pending: _Pending) -> bytes:
        page, rest = pending.records[: pending.page_size], pending.records[pending.page_size :]
        kind = pending.object_type.split("[", 1)[0]
        if kind == "DataExtensionObject":  # rows, not entities: counted only
            self.counts.add(pending.unit.client_id, f"returned:{kind}", len(page))
            self.hooks.rows_returned(pending.unit, page)
        else:
            self.counts.returned(pending.unit.client_id, kind, (str(record["ID"]) for record in page))
        status = "OK"
        if rest:
            status = "MoreDataAvailable"
            self._pending[request_id] = _Pending(
                pending.unit, pending.object_type, pending.properties, rest, pending.page_size
            )
        return retrieve_reply(status, request_id, pending.object_type, page, pending.properties)

    def _continue(self, unit: Unit, request_id: str) -> bytes:
        pending = self._pending.pop(request_id, None)
        if pending is None or pending.unit is not unit:
            status = f"Error: ContinueRequest {request_id} is unknown or already used"
            return retrieve_reply(status, str(uuid.uuid4()), "", [], [])
        return self._page(str(uuid.uuid4()), pending)

    # --- REST -------------------------------------------------------------------------------------

    async def _rest_unit(self, request: web.Request) -> Unit | web.Response:
        await self._latency("rest")
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        unit, expired = self._unit_for(token)
        if unit is None or expired:
            return _rest_error(401, 0, "Not Authorized")
        return self._injected(unit, soap=False) or unit

    async def _asset_query(self, request: web.Request) -> web.Response:
        unit = await self._rest_unit(request)
        if isinstance(unit, web.Response):
            return unit
        self.counts.add(unit.client_id, "rest:asset-query")
        try:
            body = await request.json()
            query = body["query"]
            page = int(body.get("page", {}).get("page", 1))
            page_size = min(max(1, int(body.get("page", {}).get("pageSize", 50))), 500)
        except (ValueError, KeyError, TypeError, AttributeError):
            return _rest_error(400, 10002, "Invalid query")
        if query.get("property") != "data.email.legacy.legacyId" or query.get("simpleOperator") not in (
            "in",
            "equal",
            "equals",
        ):
            return _rest_error(400, 10002, "Unsupported query property or operator")
        value = query.get("value")
        wanted = {str(v) for v in (value if isinstance(value, list) else [value])}
        matches = [e for e in unit.objects["Email"] if e.get("content_builder") and str(e.get("ID")) in wanted]
        start = (page - 1) * page_size
        emails = matches[start : start + page_size]
        items = [self._asset(unit, email) for email in emails]
        self.counts.returned(unit.client_id, "asset", (str(email["ID"]) for email in emails))
        return _json({"count": len(matches), "page": page, "pageSize": page_size, "links": {}, "items": items})

    def _asset(self, unit: Unit, email: dict[str, Any]) -> dict[str, Any]:
        legacy_id = int(email["ID"])
        folder = unit.folders.get(str(email.get("CategoryID")), {})

        def when(name: str) -> str:
            return parse_soap_date(str(email[name])).isoformat()

        return {
            "id": int(email.get("asset_id", legacy_id + 1_000_000)),
            "customerKey": str(uuid.UUID(int=legacy_id)),
            "assetType": {"id": 208, "name": "htmlemail", "displayName": "HTML Email"},
            "name": email.get("Name", ""),
            "createdDate": when("CreatedDate"),
            "modifiedDate": when("ModifiedDate"),
            "category": {
                "id": int(email["CategoryID"]),
                "name": folder.get("Name", ""),
                "parentId": int(folder.get("ParentFolder.ID") or 0),
            },
            "views": {"subjectline": {"content": email.get("Subject", "")}},
            "data": {"email": {"options": {"characterEncoding": "utf-8"}, "legacy": {"legacyId": legacy_id}}},
            "legacyData": {"legacyId": legacy_id},
        }

    async def _rowset(self, request: web.Request) -> web.Response:
        unit = await self._rest_unit(request)
        if isinstance(unit, web.Response):
            return unit
        self.counts.add(unit.client_id, "rest:rowset")
        ident = request.match_info["ident"]
        if ident not in (unit.click_log_object_id, f"key:{unit.click_log_key}"):
            return _rest_error(404, 10000, f"Data extension {ident} not found")
        try:
            items = await request.json()
            rows = [({str(k): str(v) for k, v in i["keys"].items()}, dict(i.get("values", {}))) for i in items]
        except (ValueError, KeyError, TypeError, AttributeError):
            return _rest_error(400, 10001, "Invalid rowset body")
        rejected = unit.reject_row_ids | set(self.config.reject_row_ids)
        errors = [
            {"keys": keys, "errorcode": 10006, "message": "Primary key fields do not match the data extension"}
            for keys, _ in rows
            if set(keys) != set(ROW_KEYS) or keys.get("ID") in rejected
        ]
        if errors:
            message = f"Unable to save rows for data extension ID {unit.click_log_object_id}"
            return _rest_error(400, 10006, message, additionalErrors=errors)
        saved = [unit.mark(keys, values) for keys, values in rows]
        for row in saved:
            self.hooks.row_marked(unit, row)
        return _json([{"keys": {k: row[k] for k in ROW_KEYS}, "values": row} for row in saved])

    # --- admin ------------------------------------------------------------------------------------

    async def _get_config(self, request: web.Request) -> web.Response:
        return _json(self.config.to_json())

    async def _set_config(self, request: web.Request) -> web.Response:
        try:
            self.config.update(await request.json())
        except (ValueError, TypeError, AttributeError) as exc:
            return _json({"error": str(exc)}, 400)
        if self.config.seed is not None:
            self._rng.seed(self.config.seed)
        return _json(self.config.to_json())

    async def _get_counts(self, request: web.Request) -> web.Response:
        return _json(self.counts.to_json())

    async def _get_returns(self, request: web.Request) -> web.Response:
        return _json(self.counts.returned_at)

    async def _reset_counts(self, request: web.Request) -> web.Response:
        self.counts.reset()
        return _json(self.counts.to_json())

    async def _expire_tokens(self, request: web.Request) -> web.Response:
        """Expire every token issued so far (the next call gets ``Token Expired`` / 401)."""
        for entry in self._tokens.values():
            entry.expires_at = 0.0
        return _json({"expired": len(self._tokens)})

    async def _rows(self, request: web.Request) -> web.Response:
        client_id = request.query.get("client_id")
        unit = next((u for u in self.units if u.client_id == client_id), None)
        if unit is None:
            return _json({"error": "unknown client_id"}, 404)
        return _json(unit.rows)


async def start_emulator(
    dataset: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config: Config | None = None,
    hooks: Hooks | None = None,
) -> Emulator:
    """Start an emulator in this event loop (port 0 picks a free port); ``await emulator.stop()``."""
    emulator = Emulator(dataset, config, hooks)
    await emulator.start(host, port)
    return emulator


class EmulatorThread:
    """The emulator on its own event loop in a background thread, for synchronous clients (zeep)."""

    def __init__(self, dataset: dict[str, Any], config: Config | None = None) -> None:
        self.emulator = Emulator(dataset, config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def start(self) -> str:
        self._thread.start()
        url: str = self._call(self.emulator.start)
        return url

    def stop(self) -> None:
        self._call(self.emulator.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
