"""The control center renders hostile values as text, never as markup (S6 of issue 25).

Every user-controlled string (operator, location and event type names, an event type's
description and sample, a webhook's URL, a receiver's answer, an event's data, error messages
that echo what was typed, a path that does not exist) is set to values made to break out of an
attribute or an element, then every page and fragment is fetched through the served app as the
admin and as the hostile operator, parsed with a real HTML parser (the standard library's), and
held to what the templates themselves write: no element, and no attribute on an element, that
no template has; no script but the layout's three; and the hostile values there as text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from aiohttp import web

from hotspot_webhooks.web import pages
from tests.live_api import ADMIN_TOKEN, LiveAPI

TEMPLATES = Path(pages.__file__).parent / "templates"

ATTRIBUTE_BREAKOUT = '" hx-post="/ui/tokens" hx-trigger="load'
SINGLE_QUOTE_BREAKOUT = "' hx-post='/ui/tokens' hx-trigger='load"
ELEMENT_BREAKOUT = "'><script>alert(1)</script>"
TEMPLATE_SYNTAX = "{{7*7}}"
HOSTILE = f"{ATTRIBUTE_BREAKOUT} {SINGLE_QUOTE_BREAKOUT} {ELEMENT_BREAKOUT} {TEMPLATE_SYNTAX}"
# no whitespace in a URL: the same breakouts, glued together
HOSTILE_PATH = '/h"hx-post="/ui/tokens"hx-trigger="load\'><script>alert(1)</script>{{7*7}}'


# what the templates write


def _template_markup() -> dict[str, set[str]]:
    """Each element the templates write, with every attribute they ever give it."""
    allowed: dict[str, set[str]] = defaultdict(set)
    for template in TEMPLATES.glob("*.html"):
        source = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)
        source = re.sub(r"\{\{.*?\}\}", "X", source, flags=re.S)  # a value: one word
        source = re.sub(r"\{%.*?%\}", " ", source, flags=re.S)
        for tag, inside in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>", source):
            names = re.findall(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+))?""", inside)
            allowed[tag.lower()].update(name.lower() for name in names)
    for tag in ("html", "head", "body"):
        allowed.setdefault(tag, set())
    return allowed


ALLOWED = _template_markup()


@dataclass
class Element:
    tag: str
    attributes: list[tuple[str, str | None]]


@dataclass
class Parsed(HTMLParser):
    elements: list[Element] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, attrs))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def assert_only_template_markup(page: httpx.Response, *, shows: tuple[str, ...] = ()) -> None:
    """The page holds only elements and attributes its templates write, and each of
    ``shows`` as text (or as an attribute's whole value)."""
    where = f"{page.request.method} {page.request.url}"
    parsed = Parsed()
    parsed.feed(page.text)
    parsed.close()
    for element in parsed.elements:
        assert element.tag in ALLOWED, f"{where}: a <{element.tag}> no template writes"
        for name, value in element.attributes:
            assert name in ALLOWED[element.tag], (
                f"{where}: <{element.tag}> has {name}={value!r}, which no template gives it"
            )
        names = [name for name, _ in element.attributes]
        assert len(names) == len(set(names)), f"{where}: <{element.tag}> repeats an attribute"
    scripts = [e for e in parsed.elements if e.tag == "script"]
    sources = [dict(s.attributes).get("src") or "" for s in scripts]
    assert all(src.startswith("/ui/static/") for src in sources), f"{where}: scripts {sources}"
    assert len(scripts) <= 3, f"{where}: {len(scripts)} scripts"
    text = "".join(parsed.texts)
    values = [v for e in parsed.elements for _, v in e.attributes if v]
    for wanted in shows:
        assert wanted in text or any(wanted in v for v in values), f"{where}: {wanted!r} lost"


# hostile data, everywhere a user can put it


@pytest.fixture
async def hostile_receiver() -> AsyncIterator[str]:
    """An endpoint answering 500 with a body made to break out of the page."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text=HOSTILE, content_type="text/html")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}{HOSTILE_PATH}"
    await runner.cleanup()


@dataclass
class World:
    api: LiveAPI
    operator_token: str
    webhook_id: str
    delivery_ids: list[str]


@pytest.fixture
async def world(make_api: Callable[..., Any], hostile_receiver: str) -> World:
    api: LiveAPI = await make_api(dispatch=False)
    token = await api.operator(HOSTILE)
    await api.location(token, "loc-1", HOSTILE)
    await api.ok(
        "POST",
        "/v1/event-types",
        json={
            "name": "hostile.sample",
            "description": HOSTILE,
            "schema": {"type": "object", "properties": {HOSTILE: {"type": "string"}}},
            "sample": {HOSTILE: HOSTILE, "note": ATTRIBUTE_BREAKOUT},
        },
    )
    body = {
        "location_ids": ["loc-1"],
        "event_types": ["hostile.sample"],
        "callback_url": hostile_receiver,
    }
    webhook = await api.ok("POST", "/v1/webhooks", token, json=body)
    tested = await api.ok(
        "POST", f"/v1/webhooks/{webhook['id']}/test?event_type=hostile.sample", token
    )
    event = await api.ok(
        "POST",
        "/v1/events",
        token,
        json={"type": "hostile.sample", "location_id": "loc-1", "data": {HOSTILE: HOSTILE}},
    )
    pending = await api.ok("GET", f"/v1/deliveries?event_id={event['id']}", token)
    options = {  # SPEC §9, each shown on the webhook's page, in its edit form, in a preview
        "description": HOSTILE,
        "metadata": {HOSTILE: HOSTILE},
        "filter": {HOSTILE: HOSTILE},
        "template": {"body": "{% raw %}" + HOSTILE + "{% endraw %}", "content_type": "text/plain"},
        "auth": {"type": "basic", "username": HOSTILE, "password": "x"},
    }
    await api.ok("PATCH", f"/v1/webhooks/{webhook['id']}", token, json=options)
    return World(api, token, webhook["id"], [tested["id"], pending["data"][0]["id"]])


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def browsers(world: World) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []

    def new() -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=world.api.url, timeout=30, follow_redirects=True)
        opened.append(client)
        return client

    yield new
    for client in opened:
        await client.aclose()


async def signed_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign in; the session's CSRF token."""
    form = await client.get("/ui/sign-in")
    csrf = CSRF.search(form.text)
    assert csrf, "no CSRF token on the sign-in page"
    home = await client.post(
        "/ui/sign-in", data={"csrf_token": csrf.group(1), "token": token, "next": "/ui/"}
    )
    assert home.status_code == 200, home.text
    found = CSRF.search(home.text)
    assert found
    return found.group(1)


def pages_of(world: World) -> list[str]:
    webhook, (tested, pending) = world.webhook_id, world.delivery_ids
    return [
        "/ui/",
        "/ui/locations",
        "/ui/webhooks",
        f"/ui/webhooks/{webhook}",
        f"/ui/webhooks/{webhook}/delete",
        f"/ui/webhooks/{webhook}/preview",
        "/ui/webhooks/new",
        "/ui/webhooks/new?preset=mailchimp",
        "/ui/deliveries",
        "/ui/deliveries/rows",
        f"/ui/deliveries?webhook_id={webhook}&status=failed",
        f"/ui/deliveries/{tested}",
        f"/ui/deliveries/{pending}",
        "/ui/event-types",
        "/ui/tokens",
    ]


async def test_every_page_shows_hostile_values_as_text_to_their_operator(
    world: World, browsers: Callable[[], httpx.AsyncClient]
) -> None:
    client = browsers()
    csrf = await signed_in(client, world.operator_token)
    for path in pages_of(world):
        page = await client.get(path)
        assert page.status_code == 200, f"{path}: {page.status_code}"
        fragment = path.startswith("/ui/deliveries/rows")
        # the operator's name in the layout, at least
        assert_only_template_markup(page, shows=() if fragment else (HOSTILE,))
    event_types = await client.get("/ui/event-types")
    assert_only_template_markup(event_types, shows=(HOSTILE, ATTRIBUTE_BREAKOUT))

    # the forms' answers: a webhook created and its key rotated, a test event (a page, and
    # the fragment htmx asks for), a token
    posted = {"csrf_token": csrf}
    created = await client.post(
        "/ui/webhooks",
        data={
            **posted,
            "callback_url": world.api.url.replace("127.0.0.1", "localhost") + HOSTILE_PATH,
            "location_ids": "loc-1",
            "event_types": "hostile.sample",
        },
    )
    assert created.status_code == 200, created.text
    assert_only_template_markup(created, shows=(HOSTILE, HOSTILE_PATH))
    webhook = f"/ui/webhooks/{world.webhook_id}"
    preview = await client.get(f"{webhook}/preview", headers={"HX-Request": "true"})
    assert_only_template_markup(preview, shows=(HOSTILE,))
    for path, headers in [
        (f"{webhook}/rotate-key", {}),
        (f"{webhook}/test", {}),
        (f"{webhook}/test", {"HX-Request": "true"}),
        ("/ui/tokens", {}),
    ]:
        answer = await client.post(path, data=posted, headers=headers)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        assert_only_template_markup(answer, shows=(HOSTILE,))


async def test_every_page_shows_hostile_values_as_text_to_the_admin(
    world: World, browsers: Callable[[], httpx.AsyncClient]
) -> None:
    client = browsers()
    csrf = await signed_in(client, ADMIN_TOKEN)
    for path in [*pages_of(world), "/ui/operators"]:
        page = await client.get(path)
        assert page.status_code == 200, f"{path}: {page.status_code}"
        assert_only_template_markup(page)
    assert_only_template_markup(await client.get("/ui/operators"), shows=(HOSTILE,))
    assert_only_template_markup(await client.get("/ui/locations"), shows=(HOSTILE,))
    made = await client.post("/ui/operators", data={"csrf_token": csrf, "name": HOSTILE + "2"})
    assert made.status_code == 200, made.text
    assert_only_template_markup(made, shows=(HOSTILE + "2",))


async def test_error_messages_that_echo_what_was_typed_show_it_as_text(
    world: World, browsers: Callable[[], httpx.AsyncClient]
) -> None:
    client = browsers()
    csrf = await signed_in(client, world.operator_token)
    fragment = {"HX-Request": "true"}
    for path, headers in [
        (f"/ui/deliveries?since={quote(HOSTILE)}", {}),
        (f"/ui/deliveries/rows?since={quote(HOSTILE)}", fragment),
        (f"/ui/{quote(HOSTILE)}", {}),
        (f"/ui/webhooks/{quote(ELEMENT_BREAKOUT)}x", {}),
    ]:
        page = await client.get(path, headers=headers)
        assert page.status_code in (404, 422), f"{path}: {page.status_code}"
        assert_only_template_markup(page, shows=(ELEMENT_BREAKOUT,))
    for path, data in [
        ("/ui/locations", {"id": HOSTILE, "name": HOSTILE}),
        (
            "/ui/webhooks",
            {"callback_url": "ftp:" + HOSTILE_PATH, "location_ids": "*", "event_types": "*"},
        ),
        (f"/ui/webhooks/{world.webhook_id}/recover", {"since": HOSTILE}),
        (
            f"/ui/webhooks/{world.webhook_id}",
            {"callback_url": "ftp:" + HOSTILE_PATH, "filter": ELEMENT_BREAKOUT, "auth_type": ""},
        ),
        (
            "/ui/webhooks/new",
            {
                "preset": "mailchimp",
                "preset_values.list_id": HOSTILE,
                "location_ids": "loc-1",
                "event_types": "customer.create",
            },
        ),
    ]:
        page = await client.post(path, data={"csrf_token": csrf, **data})
        assert page.status_code == 422, f"{path}: {page.status_code}"
        assert_only_template_markup(page, shows=(ELEMENT_BREAKOUT,))
    signing_in = browsers()
    page = await signing_in.get(f"/ui/sign-in?next={quote(HOSTILE)}&why={quote(HOSTILE)}")
    assert_only_template_markup(page)


def test_no_template_marks_a_value_safe_or_turns_escaping_off() -> None:
    """Escaping is Jinja's autoescape alone: nothing opts out of it."""
    for template in TEMPLATES.glob("*.html"):
        source = template.read_text()
        for opt_out in ("|safe", "| safe", "autoescape false", "Markup", "tojson"):
            assert opt_out not in source, f"{template.name} uses {opt_out}"


# where the tests above render each template: a template added later is added here too
RENDERED_BY = {
    "base.html": "every page",
    "_macros.html": "every page with a form",
    "overview.html": "/ui/",
    "sign_in.html": "/ui/sign-in?next=…&why=…",
    "locations.html": "/ui/locations, and its form refused",
    "webhooks.html": "/ui/webhooks, and its form refused",
    "webhook.html": "/ui/webhooks/{id}, and its edit form refused",
    "_options.html": "/ui/webhooks/{id} (a webhook with every option), /ui/webhooks",
    "webhook_new.html": "/ui/webhooks/new, with a preset, and its form refused",
    "webhook_preview.html": "/ui/webhooks/{id}/preview",
    "_preview.html": "/ui/webhooks/{id}/preview, and asked for by htmx",
    "webhook_delete.html": "/ui/webhooks/{id}/delete",
    "webhook_secret.html": "a webhook created, its key rotated",
    "_test_result.html": "a test event sent with htmx",
    "deliveries.html": "/ui/deliveries",
    "_delivery_table.html": "/ui/deliveries, /ui/webhooks/{id}",
    "_delivery_rows.html": "/ui/deliveries/rows",
    "delivery.html": "/ui/deliveries/{id}, a test event sent without htmx",
    "event_types.html": "/ui/event-types",
    "tokens.html": "/ui/tokens, a token created",
    "operators.html": "/ui/operators, an operator created",
    "error.html": "a path that does not exist, a bad filter, a bad recover form",
    "_error.html": "a bad filter asked for by htmx",
}


def test_every_template_is_rendered_with_hostile_values_above() -> None:
    assert {t.name for t in TEMPLATES.glob("*.html")} == set(RENDERED_BY)
