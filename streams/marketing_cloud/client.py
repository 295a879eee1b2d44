"""``MarketingCloudClient``: async SFMC access for one business unit (SOAP Retrieve, assets, rowsets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Self

import orjson

from ..chunking import chunks
from ..settings import BusinessUnit
from . import rest
from .auth import Token
from .errors import MalformedResponse, RestError, RetrieveError, SoapFault
from .filters import ComplexFilter, Filter, SimpleFilter, ids_in
from .records import (
    CLICK_PROPERTIES,
    EMAIL_PROPERTIES,
    FOLDER_PROPERTIES,
    SEND_PROPERTIES,
    SUBSCRIBER_PROPERTIES,
    DataFolder,
    Email,
    RowFailure,
    Send,
    Subscriber,
    email_from_asset,
    email_from_soap,
    folder_from,
    row_keys,
    send_from,
    subscriber_from,
)
from .session import AiohttpTransport, Reply, Request, Session, Transport, json_body, json_or_none
from .soap import Fault, Result, RetrieveReply, continue_envelope, parse_retrieve, retrieve_envelope

MAX_BATCH = 2500
IN_CHUNK = 2500
ROWSET_CHUNK = 50
ASSET_PAGE_SIZE = 200


def _unique_ids(ids: Iterable[int | str]) -> list[int]:
    return sorted({int(i) for i in ids})


class MarketingCloudClient:
    """Async client for one business unit; use ``async with`` (or call ``aclose()``).

    ``stats`` counts ``requests``, ``retries``, ``throttled`` (429 answers), ``token_refreshes`` and
    ``token_failures`` (token requests refused); ``token_error`` says why the last was refused. ``timeout``
    is seconds per request; ``max_concurrency`` requests are in flight at most; a 429, a 5xx or a transport
    error is sent again up to ``max_attempts`` sends in all, after a jittered backoff of ``backoff_base``
    doubling to ``backoff_cap`` seconds (or the reply's ``Retry-After``).

    SFMC failures raise ``MarketingCloudError``s: ``AuthError`` (credentials refused, or a fresh token refused
    again), ``RetriesExhausted`` (every attempt failed transiently), ``MalformedResponse`` (a reply or result
    that cannot be read); SOAP calls also ``SoapFault`` (a client fault in a 5xx reply is not retried) and
    ``RetrieveError``, REST calls ``RestError``. ``transport`` sends the requests (default: ``AiohttpTransport``,
    closed by ``aclose``)."""

    def __init__(
        self,
        unit: BusinessUnit,
        *,
        transport: Transport | None = None,
        max_concurrency: int = 4,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
    ) -> None:
        self.unit = unit
        self._own_transport: AiohttpTransport | None = None
        if transport is None:
            transport = self._own_transport = AiohttpTransport(timeout)
        self._session = Session(
            unit,
            transport,
            max_concurrency=max_concurrency,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
        )

    def __repr__(self) -> str:
        return f"MarketingCloudClient(tenant={self.unit.tenant!r}, client_id={self.unit.client_id!r})"

    @property
    def stats(self) -> dict[str, int]:
        """The session's live counters, ``{"requests" | "retries" | "throttled" | "token_refreshes" |
        "token_failures": count}``."""
        return self._session.stats

    @property
    def token_error(self) -> str | None:
        """Why the last token request was refused (``HTTP 401 invalid_client``; never a secret); None once a token
        was granted, or before any was asked."""
        return self._session.token_error

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections (of the default transport)."""
        if self._own_transport is not None:
            await self._own_transport.aclose()

    # --- SOAP -------------------------------------------------------------------------------------

    async def _soap(self, object_type: str, envelope: Callable[[str], bytes]) -> RetrieveReply:
        def build(token: Token) -> Request:
            return Request("POST", f"{token.soap_url}Service.asmx", envelope(token.access_token),
                           {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Retrieve"})

        response = await self._session.call(build, soap=True)
        reply = parse_retrieve(response.content)
        if isinstance(reply, Fault):
            raise SoapFault(reply.code, reply.string)
        if reply.error:
            raise RetrieveError(object_type, reply.status)
        return reply

    async def retrieve(
        self,
        object_type: str,
        properties: Sequence[str],
        filter: Filter | None = None,
        batch_size: int | None = None,
    ) -> AsyncIterator[list[Result]]:
        """Yield pages of flattened results (lists of ``Result``; empty pages are skipped), continuing while SFMC
        says ``MoreDataAvailable``; ``batch_size`` is rows a page, at most 2500."""
        size = min(batch_size, MAX_BATCH) if batch_size else None
        reply = await self._soap(
            object_type, lambda token: retrieve_envelope(token, object_type, properties, filter, size)
        )
        while True:
            if reply.results:
                yield reply.results
            if not reply.more:
                return
            request_id = reply.request_id
            if not request_id:
                raise MalformedResponse(f"Retrieve {object_type}: MoreDataAvailable without a RequestID")
            reply = await self._soap(object_type, partial(continue_envelope, request_id=request_id))

    async def _all(self, object_type: str, properties: Sequence[str], ids: Iterable[int | str]) -> list[Result]:
        results: list[Result] = []
        for chunk in chunks(_unique_ids(ids), IN_CHUNK):
            id_filter = ids_in("ID", [str(i) for i in chunk])
            async for page in self.retrieve(object_type, properties, id_filter, MAX_BATCH):
                results.extend(page)
        return results

    async def click_rows(self, since: datetime, page_size: int = MAX_BATCH) -> AsyncIterator[list[dict[str, str]]]:
        """Click-log rows newer than ``since`` that are still ``Ready``, in pages of up to ``page_size`` rows
        (at most 2500), each row a raw ``{Name: Value}`` dict of strings. A naive ``since`` is server time."""
        row_filter = ComplexFilter(
            SimpleFilter("EventDate", "greaterThan", date_value=since),
            "AND",
            SimpleFilter("Ready", "equals", "true"),
        )
        object_type = f"DataExtensionObject[{self.unit.click_log_key}]"
        async for page in self.retrieve(object_type, CLICK_PROPERTIES, row_filter, page_size):
            yield [dict(result.get("Properties") or {}) for result in page]

    async def sends(self, ids: Iterable[int | str]) -> list[Send]:
        """The sends of ``ids`` (ints or numeric strings; a repeated id is fetched once) that SFMC returns: an
        id it does not know is absent from the list."""
        return [send_from(result) for result in await self._all("Send", SEND_PROPERTIES, ids)]

    async def subscribers(self, ids: Iterable[int | str]) -> list[Subscriber]:
        """The subscribers of ``ids`` that SFMC returns, like ``sends``: an unknown id is absent."""
        return [subscriber_from(r) for r in await self._all("Subscriber", SUBSCRIBER_PROPERTIES, ids)]

    async def folders(self, ids: Iterable[int | str]) -> list[DataFolder]:
        """The data folders of ``ids`` that SFMC returns, like ``sends``: an unknown id is absent."""
        return [folder_from(result) for result in await self._all("DataFolder", FOLDER_PROPERTIES, ids)]

    async def emails(self, ids: Iterable[int | str]) -> list[Email]:
        """Content Builder assets by legacy id; ids not found there are read from classic SOAP ``Email``. One
        ``Email`` per id found, in ascending id order; an id found in neither is absent."""
        wanted = _unique_ids(ids)
        found: dict[int, Email] = {}
        for chunk in chunks(wanted, ASSET_PAGE_SIZE):
            for email in await self._assets(chunk):
                if email.id in chunk:
                    found.setdefault(email.id, email)
        missing = [i for i in wanted if i not in found]
        if missing:
            for result in await self._all("Email", EMAIL_PROPERTIES, missing):
                email = email_from_soap(result)
                found.setdefault(email.id, email)
        return [found[i] for i in wanted if i in found]

    # --- REST -------------------------------------------------------------------------------------

    async def _rest(self, method: str, path: str, body: Any) -> Reply:
        content = orjson.dumps(body)

        def build(token: Token) -> Request:
            headers = {"Authorization": f"Bearer {token.access_token}", "Content-Type": "application/json"}
            return Request(method, f"{token.rest_url}{path}", content, headers)

        return await self._session.call(build, soap=False)

    async def _rest_json(self, method: str, path: str, body: Any) -> Any:
        response = await self._rest(method, path, body)
        if not response.is_success:
            raise _rest_error(response)
        return json_body(response)

    async def _assets(self, ids: Sequence[int]) -> list[Email]:
        emails: list[Email] = []
        page = 1
        while True:
            reply = await self._rest_json(
                "POST", "asset/v1/content/assets/query", rest.asset_query(ids, page, ASSET_PAGE_SIZE)
            )
            items, count = rest.asset_page(reply)
            emails.extend(email for email in map(email_from_asset, items) if email is not None)
            if not items or page * ASSET_PAGE_SIZE >= count:
                return emails
            page += 1

    async def mark_processed(self, rows: Sequence[Mapping[str, str]]) -> list[RowFailure]:
        """Set ``Processed`` on click-log rows (by their own key values), 50 rows a request.

        SFMC refuses a whole request when one row's keys do not match the primary key (errorcode
        10006) and applies none of it. The rows the error names are returned as ``RowFailure`` and the
        other rows are sent again; if the error names no row, rows are sent one at a time to find
        them. Any other error reply raises ``RestError``; see the class for the rest."""
        failures: list[RowFailure] = []
        for chunk in chunks(rows, ROWSET_CHUNK):
            failures.extend(await self._mark_chunk(list(chunk)))
        return failures

    async def _mark_chunk(self, rows: list[Mapping[str, str]]) -> list[RowFailure]:
        path = f"hub/v1/dataevents/{self.unit.click_log_object_id}/rowset"
        failures: list[RowFailure] = []
        pending = rows
        while pending:
            response = await self._rest("POST", path, rest.rowset(pending))
            if response.is_success:
                break
            named = rest.key_mismatches(json_or_none(response)) if response.status_code == 400 else None
            if named is None:
                raise _rest_error(response)
            refused = {_frozen(failure.keys) for failure in named}
            remaining = [row for row in pending if _frozen(row_keys(row)) not in refused]
            if len(remaining) == len(pending):
                if len(pending) == 1:
                    code, message = rest.error_parts(json_or_none(response))
                    failures.append(RowFailure(row_keys(pending[0]), code or rest.KEY_MISMATCH, message))
                    break
                for row in pending:
                    failures.extend(await self._mark_chunk([row]))
                break
            failures.extend(failure for failure in named if _frozen(failure.keys) in refused)
            pending = remaining
        return failures


def _frozen(keys: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(keys.items())


def _rest_error(response: Reply) -> RestError:
    code, message = rest.error_parts(json_or_none(response))
    return RestError(response.status_code, code, message)
