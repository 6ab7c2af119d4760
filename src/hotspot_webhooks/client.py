"""The REST API from Python, as the service's own verbs: what the CLI's remote mode talks to.

``RemoteService`` has the parts the command line calls on ``Service`` (``operators``,
``webhooks``, ...), with the same verbs, the same arguments and the same resource models back,
so every command prints the same thing whether it opened the database itself or asked a running
server (``HOTSPOT_WEBHOOKS_URL`` and a token).
The server decides who may do what: the token's operator, or the admin. An error answer becomes
the exception the service would have raised, with the server's message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel

from ._version import __version__
from .errors import (
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    HotspotWebhooksError,
    InvalidInput,
    MalformedJSON,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from .models import (
    Delivery,
    DeliveryWithAttempts,
    EmitResult,
    Event,
    EventTypeInfo,
    IntegrationInfo,
    Location,
    Operator,
    OperatorWithToken,
    Page,
    RecoverResult,
    Token,
    TokenCreated,
    Webhook,
    WebhookOptions,
    WebhookPreview,
    WebhookWithSecret,
)
from .service import EmitRequest

M = TypeVar("M", bound=BaseModel)

#: Long enough for a test send to a slow receiver (the server's own timeout is 15 s by default).
REQUEST_TIMEOUT = 60.0
#: The most of one answer the client reads. Ours are far smaller (a page holds at most 1,000
#: items); a larger one is not from a hotspot-webhooks server, and read whole it would take
#: the memory of many times its size.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
_READ_CHUNK = 64 * 1024

_ERRORS: dict[int, type[HotspotWebhooksError]] = {
    400: MalformedJSON,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    429: TooManyRequests,
    503: DatabaseUnavailable,
}


class ServerUnreachable(HotspotWebhooksError):
    """The server at HOTSPOT_WEBHOOKS_URL did not answer (or not as this service does)."""

    status = 503


def _segment(value: str) -> str:
    """One path segment, whatever characters an id holds."""
    return quote(value, safe="")


def _query(**values: object) -> dict[str, str]:
    return {key: str(value) for key, value in values.items() if value is not None}


class _Rest:
    """One session with the server, as the holder of ``token``: the parts' requests go here."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"hotspot-webhooks-cli/{__version__}",
            },
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        )

    async def close(self) -> None:
        await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request; the answer's JSON (None for 204), or the error the answer means."""
        url = f"{self.base_url}{path}"
        try:
            async with self._session.request(
                method, url, json=body, params=query, allow_redirects=False
            ) as response:
                content = await self._read(response, url)
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            reason = _connect_failure(exc)
            raise ServerUnreachable(
                f"cannot reach the server at {self.base_url}: {reason.lower()} "
                "(is `hotspot-webhooks serve` or `api` running there? check HOTSPOT_WEBHOOKS_URL)"
            ) from None
        except TimeoutError:
            raise ServerUnreachable(
                f"the server at {self.base_url} did not answer within {REQUEST_TIMEOUT:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ServerUnreachable(f"talking to {self.base_url} failed: {exc}") from None
        if status == 204:
            return None
        try:
            answer = json.loads(content) if content else None
        except ValueError:  # not JSON, or not UTF-8
            answer = None
        if 200 <= status < 300 and answer is not None:
            return answer
        raise _error(status, answer, url)

    @staticmethod
    async def _read(response: aiohttp.ClientResponse, url: str) -> bytes:
        """The answer's body, read up to ``MAX_ANSWER_BYTES``: a larger one (as declared, or
        as it arrives) is refused, without reading the rest."""
        declared = response.content_length
        if declared is not None and declared > MAX_ANSWER_BYTES:
            raise _too_large(url)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise _too_large(url)
            chunks.append(chunk)
        return b"".join(chunks)

    async def model(self, kind: type[M], method: str, path: str, **kwargs: Any) -> M:
        return kind.model_validate(await self.call(method, path, **kwargs))

    async def listed(self, kind: type[M], path: str, **query: object) -> list[M]:
        answer = await self.call("GET", path, query=_query(**query))
        return [kind.model_validate(item) for item in answer["data"]]


class _RemotePart:
    """A resource's verbs over one shared session with the server."""

    def __init__(self, rest: _Rest) -> None:
        self._rest = rest


class RemoteOperators(_RemotePart):
    """The operators' verbs over REST."""

    async def create(self, name: str) -> OperatorWithToken:
        return await self._rest.model(
            OperatorWithToken, "POST", "/v1/operators", body={"name": name}
        )

    async def get_all(self) -> list[Operator]:
        return await self._rest.listed(Operator, "/v1/operators")

    async def set_status(self, operator: str, status: str) -> Operator:
        path = f"/v1/operators/{_segment(operator)}"
        return await self._rest.model(Operator, "PATCH", path, body={"status": status})

    async def delete(self, operator: str) -> None:
        await self._rest.call("DELETE", f"/v1/operators/{_segment(operator)}")


class RemoteTokens(_RemotePart):
    """The operators' tokens' verbs over REST."""

    async def create(self, operator: str | None) -> TokenCreated:
        if operator is None:
            raise InvalidInput("give the operator whose token to create (--operator)")
        path = f"/v1/operators/{_segment(operator)}/tokens"
        return await self._rest.model(TokenCreated, "POST", path)

    async def get_all(self, operator: str | None = None) -> list[Token]:
        return await self._rest.listed(Token, "/v1/tokens", operator_id=operator)

    async def revoke(self, token_id: str) -> None:
        await self._rest.call("DELETE", f"/v1/tokens/{_segment(token_id)}")


class RemoteLocations(_RemotePart):
    """The locations' verbs over REST."""

    async def create(self, location_id: str, name: str, operator: str | None) -> Location:
        body = {"id": location_id, "name": name, "operator_id": operator}
        return await self._rest.model(Location, "POST", "/v1/locations", body=_present(body))

    async def get(self, location_id: str) -> Location:
        return await self._rest.model(Location, "GET", f"/v1/locations/{_segment(location_id)}")

    async def get_all(self, operator: str | None = None) -> list[Location]:
        return await self._rest.listed(Location, "/v1/locations", operator_id=operator)

    async def set_status(self, location_id: str, status: str) -> Location:
        path = f"/v1/locations/{_segment(location_id)}"
        return await self._rest.model(Location, "PATCH", path, body={"status": status})

    async def delete(self, location_id: str) -> None:
        await self._rest.call("DELETE", f"/v1/locations/{_segment(location_id)}")


class RemoteEventTypes(_RemotePart):
    """The event types' verbs over REST."""

    async def get_all(self) -> list[EventTypeInfo]:
        return await self._rest.listed(EventTypeInfo, "/v1/event-types")

    async def get(self, name: str) -> EventTypeInfo:
        return await self._rest.model(EventTypeInfo, "GET", f"/v1/event-types/{_segment(name)}")

    async def register(
        self, name: str, description: str, json_schema: object, sample: object
    ) -> EventTypeInfo:
        body = {"name": name, "description": description, "schema": json_schema, "sample": sample}
        return await self._rest.model(EventTypeInfo, "POST", "/v1/event-types", body=body)

    async def remove(self, name: str) -> None:
        await self._rest.call("DELETE", f"/v1/event-types/{_segment(name)}")


class RemoteWebhooks(_RemotePart):
    """The webhooks' verbs over REST."""

    async def create(
        self,
        location_id: str | None = None,
        event_type: str | None = None,
        callback_url: str | None = None,
        *,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        operator: str | None = None,
        options: WebhookOptions | None = None,
    ) -> WebhookWithSecret:
        body: dict[str, object] = {
            "location_id": location_id,
            "event_type": event_type,
            "callback_url": callback_url,
            "location_ids": None if location_ids is None else list(location_ids),
            "event_types": None if event_types is None else list(event_types),
            "operator_id": operator,
        }
        body = _present(body) | ({} if options is None else options.given())
        return await self._rest.model(WebhookWithSecret, "POST", "/v1/webhooks", body=body)

    async def get_all(
        self,
        *,
        location_id: str | None = None,
        event_type: str | None = None,
        status: str | None = None,
    ) -> list[Webhook]:
        return await self._rest.listed(
            Webhook, "/v1/webhooks", location_id=location_id, event_type=event_type, status=status
        )

    async def get(self, webhook_id: str) -> Webhook:
        return await self._rest.model(Webhook, "GET", f"/v1/webhooks/{_segment(webhook_id)}")

    async def update(
        self,
        webhook_id: str,
        *,
        callback_url: str | None = None,
        status: str | None = None,
        location_ids: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        options: WebhookOptions | None = None,
    ) -> Webhook:
        body: dict[str, object] = {
            "callback_url": callback_url,
            "status": status,
            "location_ids": None if location_ids is None else list(location_ids),
            "event_types": None if event_types is None else list(event_types),
        }
        body = _present(body) | ({} if options is None else options.given())
        path = f"/v1/webhooks/{_segment(webhook_id)}"
        return await self._rest.model(Webhook, "PATCH", path, body=body)

    async def delete(self, webhook_id: str) -> None:
        await self._rest.call("DELETE", f"/v1/webhooks/{_segment(webhook_id)}")

    async def rotate_key(self, webhook_id: str) -> WebhookWithSecret:
        path = f"/v1/webhooks/{_segment(webhook_id)}/rotate-key"
        return await self._rest.model(WebhookWithSecret, "POST", path)

    async def test(
        self, webhook_id: str, *, event_type: str | None = None, location_id: str | None = None
    ) -> DeliveryWithAttempts:
        path = f"/v1/webhooks/{_segment(webhook_id)}/test"
        query = _query(event_type=event_type, location_id=location_id)
        return await self._rest.model(DeliveryWithAttempts, "POST", path, query=query)

    async def preview(
        self, webhook_id: str, *, event_type: str | None = None, location_id: str | None = None
    ) -> WebhookPreview:
        path = f"/v1/webhooks/{_segment(webhook_id)}/preview"
        query = _query(event_type=event_type, location_id=location_id)
        return await self._rest.model(WebhookPreview, "GET", path, query=query)

    async def recover(self, webhook_id: str, since: datetime) -> RecoverResult:
        path = f"/v1/webhooks/{_segment(webhook_id)}/recover"
        return await self._rest.model(
            RecoverResult, "POST", path, body={"since": since.isoformat()}
        )


class RemoteIntegrations(_RemotePart):
    """The built-in integrations (presets) over REST."""

    async def get_all(self) -> list[IntegrationInfo]:
        return await self._rest.listed(IntegrationInfo, "/v1/integrations")


class RemoteEvents(_RemotePart):
    """The events' verbs over REST."""

    async def emit(
        self, type: str, location_id: str, data: Any, *, id: str | None = None
    ) -> EmitResult:
        body = _present({"type": type, "location_id": location_id, "data": data, "id": id})
        return await self._rest.model(EmitResult, "POST", "/v1/events", body=body)

    async def emit_many(self, requests: Sequence[EmitRequest]) -> list[EmitResult]:
        """Up to 1,000 events in one request, stored together or not at all."""
        body = {
            "events": [
                _present({"type": r.type, "location_id": r.location_id, "data": r.data, "id": r.id})
                for r in requests
            ]
        }
        answer = await self._rest.call("POST", "/v1/events/batch", body=body)
        return [EmitResult.model_validate(result) for result in answer["data"]]

    async def get(self, event_id: str) -> Event:
        return await self._rest.model(Event, "GET", f"/v1/events/{_segment(event_id)}")

    async def get_all(
        self,
        *,
        location_id: str | None = None,
        type: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Event]:
        query = _query(location_id=location_id, type=type, cursor=cursor, limit=limit)
        return Page[Event].model_validate(await self._rest.call("GET", "/v1/events", query=query))


class RemoteDeliveries(_RemotePart):
    """The deliveries' verbs over REST."""

    async def get_all(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Delivery]:
        query = _query(
            webhook_id=webhook_id, event_id=event_id, status=status, cursor=cursor, limit=limit
        )
        return Page[Delivery].model_validate(
            await self._rest.call("GET", "/v1/deliveries", query=query)
        )

    async def get(self, delivery_id: str) -> DeliveryWithAttempts:
        path = f"/v1/deliveries/{_segment(delivery_id)}"
        return await self._rest.model(DeliveryWithAttempts, "GET", path)

    async def retry(self, delivery_id: str) -> Delivery:
        path = f"/v1/deliveries/{_segment(delivery_id)}/retry"
        return await self._rest.model(Delivery, "POST", path)


class RemoteService:
    """The service's parts over REST, as the holder of ``token`` may use them: the same
    attributes (``operators``, ``webhooks``, ...) and verbs as ``Service``'s parts."""

    def __init__(self, base_url: str, token: str) -> None:
        rest = _Rest(base_url, token)
        self.base_url = rest.base_url
        self._rest = rest
        self.operators = RemoteOperators(rest)
        self.tokens = RemoteTokens(rest)
        self.locations = RemoteLocations(rest)
        self.event_types = RemoteEventTypes(rest)
        self.webhooks = RemoteWebhooks(rest)
        self.integrations = RemoteIntegrations(rest)
        self.events = RemoteEvents(rest)
        self.deliveries = RemoteDeliveries(rest)

    async def close(self) -> None:
        await self._rest.close()


def _present(body: Mapping[str, object]) -> dict[str, object]:
    """A request body without the fields not given (the API tells absent from null)."""
    return {key: value for key, value in body.items() if value is not None}


def _too_large(url: str) -> ServerUnreachable:
    return ServerUnreachable(
        f"the answer of {url} is larger than {MAX_ANSWER_BYTES // 2**20} MiB: "
        "is HOTSPOT_WEBHOOKS_URL the address of a hotspot-webhooks server?"
    )


def _error(status: int, answer: object, url: str) -> HotspotWebhooksError:
    """The exception an error answer means, with the server's own message."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return ServerUnreachable(
            f"{url} answered {status} without this service's error shape: "
            "is HOTSPOT_WEBHOOKS_URL the address of a hotspot-webhooks server?"
        )
    details = error.get("details")
    kind = _ERRORS.get(status, HotspotWebhooksError)
    found = kind(error["message"], details=details if isinstance(details, list) else None)
    found.status = status
    return found


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """Why a connection failed, in the operating system's words: aiohttp's own text names its
    TLS setting (``ssl:default``) even for an http:// URL."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return str(exc.certificate_error)  # it carries no os_error
    number = exc.os_error.errno
    if isinstance(number, int) and number > 0:
        return os.strerror(number)
    return exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
