"""A webhook that reaches an operator's system without a receiver of its own (SPEC §9): its own
headers and auth (basic, bearer, OAuth2 client credentials), a filter deciding at emit which
webhooks get a delivery, a template shaping the body that both signatures sign, and what a
template that fails on an event does. Over real HTTP, through the dispatcher, on SQLite and
PostgreSQL. Secrets are never shown back, nor kept in an attempt's record."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook as StandardWebhook

from hotspot_webhooks import catalog
from hotspot_webhooks.delivery.dispatcher import Dispatcher
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.models import WebhookOptions
from hotspot_webhooks.receiver import verify_signature
from hotspot_webhooks.redaction import REDACTED
from hotspot_webhooks.service import EmitRequest, Service
from tests.receivers import start_app

BACKENDS = ("sqlite", "postgresql")
CUSTOMER = "customer.create"
PAID = "transaction.paid.create"


def sample(event_type: str, **changes: str | None) -> dict[str, Any]:
    return {**catalog.EVENT_TYPES[event_type].sample, **changes}


@dataclass
class Guarded:
    """A receiver that wants what an operator's system wants: an ``Authorization`` (and
    headers) it checks, answering 401 otherwise; and an OAuth2 token endpoint beside it."""

    authorization: set[str] = field(default_factory=set)  # accepted values
    required: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused: int = 0
    token_fetches: list[dict[str, str]] = field(default_factory=list)
    issued: int = 0
    expires_in: int = 3600
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth/token"

    def issue(self) -> str:
        """A new token, the only one the receiver accepts from now on."""
        self.issued += 1
        token = f"tok-{self.issued}"
        self.authorization = {f"Bearer {token}"}
        return token

    async def start(self) -> Guarded:
        async def hook(request: web.Request) -> web.Response:
            headers = {k: v for k, v in request.headers.items()}
            body = await request.read()
            ok = (
                request.headers.get("Authorization") in self.authorization or not self.authorization
            )
            ok = ok and all(request.headers.get(k) == v for k, v in self.required.items())
            if not ok:
                self.refused += 1
                return web.Response(status=401, text="who are you?")
            self.requests.append((headers, body))
            return web.Response(text="ok")

        async def token(request: web.Request) -> web.Response:
            form = dict(await request.post())
            expected = "Basic " + base64.b64encode(b"client-1:s3cret-client").decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"error": "invalid_client"}, status=401)
            if form.get("grant_type") != "client_credentials":
                return web.json_response({"error": "unsupported_grant_type"}, status=400)
            self.token_fetches.append({k: str(v) for k, v in form.items()})
            issued = self.issue()
            return web.json_response(
                {"access_token": issued, "token_type": "Bearer", "expires_in": self.expires_in}
            )

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_post("/oauth/token", token)
        self._runner, self.port = await start_app(app)
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


@pytest.fixture
async def guarded() -> AsyncIterator[Guarded]:
    receiver = await Guarded().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def dispatcher(service: Service) -> AsyncIterator[Dispatcher]:
    made = Dispatcher(service.store.queue, service.settings, service.cipher)
    yield made
    await made.close()


async def settle(dispatcher: Dispatcher, service: Service, passes: int = 20) -> None:
    for _ in range(passes):
        await dispatcher.run_pass()
        if not (await service.deliveries.get_all(status="pending")).data:
            return
    raise AssertionError(f"deliveries still pending after {passes} passes")


def options(**given: Any) -> WebhookOptions:
    return WebhookOptions.model_validate(given)


async def test_basic_bearer_and_headers_reach_a_receiver_that_requires_them(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    basic = "Basic " + base64.b64encode(b"crm-user:pa55-basic").decode()
    guarded.authorization = {basic, "Bearer bearer-t0ken"}
    guarded.required = {"X-Tenant": "acme-42"}
    tenant = {"X-Tenant": "acme-42"}
    with_basic = await service.webhooks.create(
        location,
        CUSTOMER,
        guarded.url,
        options=options(
            auth={"type": "basic", "username": "crm-user", "password": "pa55-basic"},
            headers=tenant,
        ),
    )
    with_bearer = await service.webhooks.create(
        location,
        CUSTOMER,
        guarded.url,
        options=options(auth={"type": "bearer", "token": "bearer-t0ken"}, headers=tenant),
    )
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-auth")
    await settle(dispatcher, service)

    outcomes = {
        d.webhook_id: d.status for d in (await service.deliveries.get_all(event_id="evt-auth")).data
    }
    assert outcomes == {with_basic.id: "succeeded", with_bearer.id: "succeeded"}
    sent = {h["Authorization"] for h, _ in guarded.requests}
    assert sent == {basic, "Bearer bearer-t0ken"}

    shown = await service.webhooks.get(with_basic.id)
    assert shown.headers == {"X-Tenant": REDACTED}
    assert shown.auth == {"type": "basic", "username": "crm-user"}
    delivery = next(d for d in (await service.deliveries.get_all(webhook_id=with_bearer.id)).data)
    [attempt] = (await service.deliveries.get(delivery.id)).attempts
    assert attempt.request_headers["Authorization"] == REDACTED
    assert attempt.request_headers["X-Tenant"] == REDACTED
    assert "bearer-t0ken" not in json.dumps(attempt.request_headers)


async def test_oauth2_fetches_one_token_for_many_deliveries_and_again_after_a_401(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    auth = {
        "type": "oauth2",
        "token_url": guarded.token_url,
        "client_id": "client-1",
        "client_secret": "s3cret-client",
        "scope": "contacts.write",
    }
    webhook = await service.webhooks.create(
        location, CUSTOMER, guarded.url, options=options(auth=auth)
    )
    assert webhook.auth == {
        "type": "oauth2",
        "token_url": guarded.token_url,
        "client_id": "client-1",
        "scope": "contacts.write",
        "client_auth": "client_secret_basic",
    }
    await service.events.emit_many(
        [EmitRequest(CUSTOMER, location, sample(CUSTOMER), id=f"evt-o{n}") for n in range(30)]
    )
    await settle(dispatcher, service)
    assert len(guarded.requests) == 30
    assert len(guarded.token_fetches) == 1
    assert guarded.token_fetches[0]["scope"] == "contacts.write"

    guarded.issue()  # the provider revokes the token: the next request gets a 401
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-after-revoke")
    await settle(dispatcher, service)
    assert guarded.refused == 1
    assert len(guarded.token_fetches) == 2  # fetched again once, and the request sent again
    [delivery] = (await service.deliveries.get_all(event_id="evt-after-revoke")).data
    assert delivery.status == "succeeded" and delivery.attempt_count == 1


async def test_oauth2_token_is_fetched_again_once_it_expires(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    guarded.expires_in = 1  # refreshed 0.1 s before it expires
    auth = {
        "type": "oauth2",
        "token_url": guarded.token_url,
        "client_id": "client-1",
        "client_secret": "s3cret-client",
    }
    await service.webhooks.create(location, CUSTOMER, guarded.url, options=options(auth=auth))
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-e1")
    await settle(dispatcher, service)
    assert len(guarded.token_fetches) == 1
    await asyncio.sleep(1.2)  # past its expiry: not a speed assertion, a wait for the clock
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-e2")
    await settle(dispatcher, service)
    assert len(guarded.token_fetches) == 2
    assert guarded.refused == 0  # refreshed before it expired, not after a 401


async def test_a_private_token_url_is_refused_unless_private_targets_are_allowed(
    make_settings: Any, location: str, service: Service
) -> None:
    strict = await Service.open(make_settings(allow_private_targets=False))
    try:
        auth = {
            "type": "oauth2",
            "token_url": "http://127.0.0.1:9/token",
            "client_id": "c",
            "client_secret": "s",
        }
        with pytest.raises(InvalidInput) as refused:
            await strict.webhooks.create(
                location, CUSTOMER, "https://93.184.215.14/hook", options=options(auth=auth)
            )
        assert "auth.token_url" in str(refused.value.details)
    finally:
        await strict.close()


async def test_filters_decide_which_webhooks_get_a_delivery(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    filters = {
        "south": {"country_code": {"$in": ["AR", "BR"]}},
        "big": {"amount": {"$gte": 10}},  # "12.50" is a number to compare, as a string
        "either": {"$or": [{"currency": "EUR"}, {"newsletter": "0"}]},
        "no_city": {"city": {"$exists": False}},  # null: the payload's way of "not given"
    }
    made = {
        name: await service.webhooks.create(
            location, PAID, guarded.url, options=options(filter=query)
        )
        for name, query in filters.items()
    }
    everyone = await service.webhooks.create(location, PAID, guarded.url)
    events = {
        "ar-small": sample(PAID, amount="4.99"),
        "br-big-eur": sample(PAID, country_code="BR", amount="12.50", currency="EUR"),
        "de-big": sample(PAID, country_code="DE", amount="100"),
        "de-nonews": sample(PAID, country_code="DE", amount="9.99", newsletter="0", city=None),
    }
    for event_id, data in events.items():
        await service.events.emit(PAID, location, data, id=event_id)

    got: dict[str, set[str]] = {name: set() for name in [*filters, "everyone"]}
    ids = {webhook.id: name for name, webhook in made.items()} | {everyone.id: "everyone"}
    for event_id in events:
        for delivery in (await service.deliveries.get_all(event_id=event_id)).data:
            got[ids[delivery.webhook_id]].add(event_id)
    assert got == {
        "south": {"ar-small", "br-big-eur"},
        "big": {"br-big-eur", "de-big"},
        "either": {"br-big-eur", "de-nonews"},
        "no_city": {"de-nonews"},
        "everyone": set(events),
    }
    counts = {e: (await service.events.get(e)).deliveries for e in events}
    assert counts == {"ar-small": 2, "br-big-eur": 4, "de-big": 2, "de-nonews": 3}
    shown = await service.webhooks.get(made["big"].id)
    assert shown.filter == {"amount": {"$gte": 10}}


async def test_a_bad_filter_is_refused_naming_its_operator(
    service: Service, location: str, guarded: Guarded
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await service.webhooks.create(
            location, PAID, guarded.url, options=options(filter={"amount": {"$near": 3}})
        )
    assert "$near" in refused.value.message
    assert "filter.amount" in str(refused.value.details)


TEMPLATE = (
    '{"text": "New guest {{ data.name or data.email }} at {{ location.name }}",'
    ' "event": {{ event.type | tojson }}, "id": {{ event.id | tojson }},'
    ' "when": {{ event.created_at | tojson }}}'
)


async def test_a_templates_output_is_sent_and_both_signatures_sign_it(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    webhook = await service.webhooks.create(
        location, CUSTOMER, guarded.url, options=options(template={"body": TEMPLATE})
    )
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-tpl")
    await settle(dispatcher, service)

    [(headers, body)] = guarded.requests
    sent = json.loads(body)
    assert sent["text"] == "New guest myname@gmail.com at Café Central"
    assert (sent["event"], sent["id"]) == (CUSTOMER, "evt-tpl")
    assert sent["when"].startswith("20")
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(body, headers["X-Hotspotsystem-Hmac-Sha256"], webhook.api_key)
    StandardWebhook(webhook.signing_secret).verify(body, headers)  # raises if it does not
    preview = await service.webhooks.preview(webhook.id)
    assert json.loads(preview.body)["text"].startswith("New guest")


async def test_a_template_that_fails_on_an_event_fails_its_delivery_at_once(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    fails_on_boom = '{% if data.email == "boom@example.com" %}{{ 1 // 0 }}{% endif %}{"ok": true}'
    await service.webhooks.create(
        location, CUSTOMER, guarded.url, options=options(template={"body": fails_on_boom})
    )
    await service.events.emit(
        CUSTOMER, location, sample(CUSTOMER, email="boom@example.com"), id="evt-boom"
    )
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-fine")
    await settle(dispatcher, service)

    [boom] = (await service.deliveries.get_all(event_id="evt-boom")).data
    assert boom.status == "failed" and boom.attempt_count == 1  # no retry burned on it
    assert boom.last_error is not None and "template" in boom.last_error
    [fine] = (await service.deliveries.get_all(event_id="evt-fine")).data
    assert fine.status == "succeeded"
    assert [json.loads(b) for _, b in guarded.requests] == [{"ok": True}]


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% for i in range(10**9) %}{% endfor %}",
    ],
)
async def test_hostile_templates_are_refused_at_create(
    service: Service, location: str, guarded: Guarded, body: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await service.webhooks.create(
            location, CUSTOMER, guarded.url, options=options(template={"body": body})
        )
    assert "template" in str(refused.value.details)


async def test_an_update_that_sends_secrets_back_redacted_keeps_them(
    service: Service, location: str, guarded: Guarded, dispatcher: Dispatcher
) -> None:
    guarded.authorization = {"Bearer keep-me"}
    guarded.required = {"X-Tenant": "acme-42"}
    webhook = await service.webhooks.create(
        location,
        CUSTOMER,
        guarded.url,
        options=options(
            auth={"type": "bearer", "token": "keep-me"}, headers={"X-Tenant": "acme-42"}
        ),
    )
    shown = await service.webhooks.get(webhook.id)
    assert shown.auth is not None and shown.headers is not None
    updated = await service.webhooks.update(
        webhook.id,
        options=options(description="CRM contacts", auth=shown.auth, headers=shown.headers),
    )
    assert updated.description == "CRM contacts"
    await service.events.emit(CUSTOMER, location, sample(CUSTOMER), id="evt-kept")
    await settle(dispatcher, service)
    [delivery] = (await service.deliveries.get_all(event_id="evt-kept")).data
    assert delivery.status == "succeeded"

    cleared = await service.webhooks.update(webhook.id, options=options(auth=None, headers=None))
    assert (cleared.auth, cleared.headers) == (None, None)


async def test_a_stored_template_is_checked_again_when_the_subscription_changes(
    service: Service, location: str, guarded: Guarded
) -> None:
    amounts = {"body": '{"amount": {{ data.amount|tojson }}}'}
    webhook = await service.webhooks.create(
        location, PAID, guarded.url, options=options(template=amounts)
    )
    renamed = await service.webhooks.update(webhook.id, options=options(description="sales"))
    assert renamed.template == {"body": amounts["body"], "content_type": "application/json"}
    with pytest.raises(InvalidInput) as refused:  # a guest has no amount
        await service.webhooks.update(webhook.id, event_types=[PAID, CUSTOMER])
    assert CUSTOMER in refused.value.message and "template" in str(refused.value.details)
    assert (await service.webhooks.get(webhook.id)).event_types == [PAID]
