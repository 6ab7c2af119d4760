"""The control center's side of SPEC §9 (issue 27), over HTTP against the served app: a webhook
made from a preset's form, the options of a custom webhook, the edit form keeping secrets that
are left blank, the preview of what a webhook sends, and each error shown by its field.

No secret typed into a form is ever written into a page: every page these tests open is
searched for each of them. The Mailchimp key here is a made-up one in Mailchimp's shape.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from markupsafe import escape

from tests.live_api import LiveAPI
from tests.receivers import PythonReceiver
from tests.test_web_sessions import signed_in

MAILCHIMP_KEY = "0123456789abcdef0123456789abcdef-us6"  # made up, in the documented shape
PASSWORD = "pw-never-shown-7Q2"
HEADER_VALUE = "hv-never-shown-K9w"
SECRETS = (MAILCHIMP_KEY, PASSWORD, HEADER_VALUE)
TEMPLATE = '{"who": {{ data.email | tojson }}, "kind": "{{ event.type }}", "tag": "<b>"}'


@pytest.fixture
async def served(make_api: Callable[..., Any]) -> LiveAPI:
    api: LiveAPI = await make_api(dispatch=False)
    return api


def no_secret_in(page: httpx.Response) -> None:
    for secret in SECRETS:
        assert secret not in page.text, f"{page.request.url} shows a secret"


def field_error(page: httpx.Response, input_id: str) -> str:
    """The message shown under the input ``input_id`` (which says it is invalid)."""
    found = re.search(rf'<p class="field-error" id="{input_id}-error">([^<]*)</p>', page.text)
    assert found, f"no error under #{input_id} in:\n{page.text[:4000]}"
    assert re.search(rf'id="{input_id}"[^>]*aria-invalid="true"', page.text), input_id
    return html.unescape(found.group(1))


def edit_form(csrf: str, callback_url: str, **changes: str | list[str]) -> dict[str, Any]:
    """A webhook's edit form as a browser posts it (to loc-1, customer.create), with
    ``changes``."""
    return {
        "csrf_token": csrf,
        "callback_url": callback_url,
        "location_ids": "loc-1",
        "event_types": "customer.create",
        **changes,
    }


def mailchimp_form(csrf: str, **changes: str | list[str]) -> dict[str, str | list[str]]:
    """The Mailchimp preset's form as a browser posts it, with ``changes``."""
    return {
        "csrf_token": csrf,
        "preset": "mailchimp",
        "preset_values.data_center": "us6",
        "preset_values.list_id": "a1b2c3d4e5",
        "preset_values.api_key": MAILCHIMP_KEY,
        "location_ids": "loc-1",
        **changes,
    }


async def test_a_mailchimp_webhook_made_from_its_form_has_its_template_and_basic_auth(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    form = await client.get("/ui/webhooks/new", params={"preset": "mailchimp"})
    assert form.status_code == 200
    # just what the preset asks: its fields, each with its pattern, the key as a password
    key_input = re.search(r'<input id="preset-api_key"[^>]*>', form.text)
    assert key_input and 'type="password"' in key_input.group(0)
    assert 'pattern="^[0-9a-f]{32}-[a-z]{2,4}[0-9]{1,3}$"' in key_input.group(0)
    assert 'name="preset_values.data_center"' in form.text
    assert 'name="preset_values.list_id"' in form.text
    assert 'name="preset_values.webhook_url"' not in form.text  # another preset's
    for event_type in ("customer.create", "subscriber.create"):  # the preset's, chosen
        assert re.search(rf'value="{event_type}" checked', form.text), event_type
    assert not re.search(r'value="transaction.paid.create" checked', form.text)

    created = await client.post(
        "/ui/webhooks/new",
        data=mailchimp_form(
            csrf,
            **{"preset_values.double_opt_in": "no"},
            event_types=["customer.create", "subscriber.create"],
        ),
    )
    assert created.status_code == 303, created.text
    [webhook] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    assert created.headers["location"] == f"/ui/webhooks/{webhook['id']}/key"
    assert webhook["preset"] == "mailchimp"
    assert webhook["callback_url"] == "https://us6.api.mailchimp.com/3.0/lists/a1b2c3d4e5"
    assert webhook["template"]["content_type"] == "application/json"
    assert webhook["auth"] == {"type": "basic", "username": "hotspot-webhooks"}
    assert webhook["filter"] == {"email": {"$nin": [None, ""]}}
    assert webhook["success_statuses"] is None  # Mailchimp answers 200, the default

    pages = [
        created,
        await client.get(created.headers["location"]),
        page := await client.get(f"/ui/webhooks/{webhook['id']}"),
        await client.get("/ui/webhooks"),
        await client.get("/ui/webhooks/new", params={"preset": "mailchimp"}),
        await client.get(
            f"/ui/webhooks/{webhook['id']}/preview", params={"event_type": "customer.create"}
        ),
    ]
    for each in pages:
        no_secret_in(each)
    # its page: the integration, the template (escaped), the auth without its password
    assert "<code>mailchimp</code>" in page.text
    assert str(escape(webhook["template"]["body"])) in page.text
    assert "<strong>basic</strong> · username <code>hotspot-webhooks</code>" in page.text
    assert "the server&#39;s setting" in page.text
    password = re.search(r'<input id="opt-auth-password"[^>]*>', page.text)
    assert password and 'value=""' in password.group(0) and "leave empty to keep" in page.text


class FormFields(HTMLParser):
    """The fields one form of a page would send as it stands (its ``action``): inputs with
    their values, checked boxes, selected options (else the first), textareas' text."""

    def __init__(self, action: str) -> None:
        super().__init__(convert_charrefs=True)
        self.action = action
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = found.get("action") == self.action and found.get("method") == "post"
        if not self.inside or ("name" not in found and tag != "option"):
            return
        if tag == "input" and (found.get("type") != "checkbox" or "checked" in found):
            self.fields.append((found["name"], found.get("value", "")))
        elif tag == "select":
            self._select = (found["name"], [])
        elif tag == "option" and self._select is not None:
            self._select[1].append((found.get("value", ""), "selected" in found))
        elif tag == "textarea":
            self._textarea = (found["name"], [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [value for value, selected in options if selected] or [options[0][0]]
            self.fields.append((name, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._textarea[1])  # a browser drops the newline after <textarea>
            self.fields.append((self._textarea[0], text.removeprefix("\n")))
            self._textarea = None


def form_as_shown(page: httpx.Response, action: str) -> dict[str, list[str]]:
    parser = FormFields(action)
    parser.feed(page.text)
    assert parser.fields, f"no form posting to {action}"
    fields: dict[str, list[str]] = {}
    for name, value in parser.fields:
        fields.setdefault(name, []).append(value)
    return fields


async def test_the_edit_form_saved_as_shown_changes_nothing_a_preset_filled_in(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    created = await client.post(
        "/ui/webhooks/new",
        data=mailchimp_form(csrf, event_types="subscriber.create", description="Newsletter"),
    )
    assert created.status_code == 303, created.text
    [before] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    path = f"/ui/webhooks/{before['id']}"
    page = await client.get(path)
    saved = await client.post(path, data=form_as_shown(page, path))
    assert saved.status_code == 303, saved.text
    after = await served.ok("GET", f"/v1/webhooks/{before['id']}", token)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }
    preview = await served.ok("GET", f"/v1/webhooks/{before['id']}/preview", token)
    assert preview["headers"]["Authorization"] == "[redacted]"  # the key is still there


async def test_an_oauth2_webhook_saved_as_shown_keeps_its_client_secret(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient], python_receiver: PythonReceiver
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    oauth2 = {
        "auth_type": "oauth2",
        "auth_token_url": python_receiver.url.replace("/hook", "/token"),
        "auth_client_id": "hotspot",
        "auth_client_secret": PASSWORD,
        "auth_scope": "contacts.write",
        "auth_client_auth": "client_secret_post",
    }
    created = await custom_webhook(client, csrf, python_receiver.url, **oauth2)
    assert created.status_code == 303, created.text
    [before] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    assert before["auth"]["client_auth"] == "client_secret_post"
    path = f"/ui/webhooks/{before['id']}"
    page = await client.get(path)
    no_secret_in(page)
    shown = form_as_shown(page, path)
    saved = await client.post(path, data=shown)
    assert saved.status_code == 303, saved.text
    after = await served.ok("GET", f"/v1/webhooks/{before['id']}", token)
    assert after["auth"] == before["auth"]
    # the token URL changed, the secret left blank: it is not sent somewhere new unasked
    moved = {**shown, "auth_token_url": [shown["auth_token_url"][0] + "/v2"]}
    refused = await client.post(path, data=moved)
    assert refused.status_code == 422
    assert "required" in field_error(refused, "opt-auth-client-secret")
    no_secret_in(refused)


async def test_a_preset_answer_that_does_not_fit_is_shown_by_its_field_and_the_key_not_again(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient]
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    refused = await client.post(
        "/ui/webhooks/new",
        # a data center that is not the key's
        data=mailchimp_form(
            csrf, **{"preset_values.data_center": "us1"}, event_types="customer.create"
        ),
    )
    assert refused.status_code == 422
    assert "must be us6" in field_error(refused, "preset-data_center")
    assert 'value="a1b2c3d4e5"' in refused.text  # the other answers stay
    no_secret_in(refused)
    hubspot = await client.post(
        "/ui/webhooks/new",
        data={
            "csrf_token": csrf,
            "preset": "hubspot",
            "preset_values.access_token": "not-a-token",
            "location_ids": "loc-1",
            "event_types": "customer.create",
        },
    )
    assert hubspot.status_code == 422
    assert "does not look like" in field_error(hubspot, "preset-access_token")
    assert "not-a-token" not in hubspot.text
    assert (await served.ok("GET", "/v1/webhooks", token))["data"] == []


async def custom_webhook(
    client: httpx.AsyncClient, csrf: str, url: str, **options: str
) -> httpx.Response:
    return await client.post(
        "/ui/webhooks",
        data={
            "csrf_token": csrf,
            "callback_url": url,
            "location_ids": "loc-1",
            "event_types": "customer.create",
            **options,
        },
    )


async def test_editing_keeps_the_secrets_left_blank_and_none_removes_the_auth(
    served: LiveAPI,
    browsers: Callable[..., httpx.AsyncClient],
    python_receiver: PythonReceiver,
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    created = await custom_webhook(
        client,
        csrf,
        python_receiver.url,
        description="CRM sync",
        metadata="team=growth",
        headers=f"X-Api-Key: {HEADER_VALUE}",
        auth_type="basic",
        auth_username="hotspot",
        auth_password=PASSWORD,
        success_statuses="2xx",
    )
    assert created.status_code == 303, created.text
    [webhook] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    assert webhook["headers"] == {"X-Api-Key": "[redacted]"}
    assert webhook["metadata"] == {"team": "growth"}
    page = await client.get(f"/ui/webhooks/{webhook['id']}")
    no_secret_in(page)
    assert "X-Api-Key: [redacted]" in page.text  # the edit form sends it back so

    # saved as the page shows it (the password left blank): the secrets are kept
    saved = await client.post(
        f"/ui/webhooks/{webhook['id']}",
        data=edit_form(
            csrf,
            python_receiver.url,
            description="CRM sync, renamed",
            metadata="team=growth",
            headers="X-Api-Key: [redacted]",
            auth_type="basic",
            auth_username="hotspot",
            auth_password="",
            success_statuses="2xx",
        ),
    )
    assert saved.status_code == 303, saved.text
    edited = await served.ok("GET", f"/v1/webhooks/{webhook['id']}", token)
    assert edited["description"] == "CRM sync, renamed"
    await served.ok("POST", f"/v1/webhooks/{webhook['id']}/test", token)
    sent = python_receiver.requests[-1]
    expected = base64.b64encode(f"hotspot:{PASSWORD}".encode()).decode()
    assert sent.header("Authorization") == f"Basic {expected}"
    assert sent.header("X-Api-Key") == HEADER_VALUE

    # a form without the option fields (a script's, say) changes only what it has
    moved = await client.post(
        f"/ui/webhooks/{webhook['id']}",
        data=edit_form(
            csrf, python_receiver.url, event_types=["customer.create", "subscriber.create"]
        ),
    )
    assert moved.status_code == 303, moved.text
    kept = await served.ok("GET", f"/v1/webhooks/{webhook['id']}", token)
    assert kept["event_types"] == ["customer.create", "subscriber.create"]
    assert {k: kept[k] for k in ("description", "metadata", "headers", "auth")} == {
        k: edited[k] for k in ("description", "metadata", "headers", "auth")
    }

    # None and empty fields: removed
    cleared = await client.post(
        f"/ui/webhooks/{webhook['id']}",
        data=edit_form(
            csrf, python_receiver.url, description="", auth_type="", headers="", success_statuses=""
        ),
    )
    assert cleared.status_code == 303, cleared.text
    edited = await served.ok("GET", f"/v1/webhooks/{webhook['id']}", token)
    assert edited["auth"] is None and edited["headers"] is None
    assert edited["description"] is None and edited["success_statuses"] is None
    await served.ok("POST", f"/v1/webhooks/{webhook['id']}/test", token)
    sent = python_receiver.requests[-1]
    assert sent.header("Authorization") is None and sent.header("X-Api-Key") is None


async def test_a_new_auth_type_needs_its_secret_and_says_so_by_its_field(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient], python_receiver: PythonReceiver
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    refused = await custom_webhook(
        client, csrf, python_receiver.url, auth_type="bearer", headers="X-One: 1\nX-Two"
    )
    assert refused.status_code == 422
    assert "write Name: value" in field_error(refused, "opt-headers")
    refused = await custom_webhook(client, csrf, python_receiver.url, auth_type="bearer")
    assert refused.status_code == 422
    assert "required" in field_error(refused, "opt-auth-token")
    assert '<details class="options" open>' in refused.text
    refused = await custom_webhook(
        client, csrf, python_receiver.url, headers=f"Content-Type: {HEADER_VALUE}"
    )
    assert refused.status_code == 422
    field_error(refused, "opt-headers")
    no_secret_in(refused)  # a value typed anew is not written back: it is typed again
    assert "Content-Type:</textarea>" in refused.text


async def test_the_preview_shows_the_rendered_body_escaped(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient], python_receiver: PythonReceiver
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    created = await custom_webhook(
        client,
        csrf,
        python_receiver.url,
        template_body=TEMPLATE,
        auth_type="bearer",
        auth_token=PASSWORD,
    )
    assert created.status_code == 303, created.text
    [webhook] = (await served.ok("GET", "/v1/webhooks", token))["data"]
    path = f"/ui/webhooks/{webhook['id']}/preview"
    fragment = await client.get(
        path, params={"event_type": "customer.create"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text  # a fragment for htmx
    body = re.search(r'<code id="preview-body">([^<]*)</code>', fragment.text)
    assert body, fragment.text
    assert html.unescape(body.group(1)) == (
        '{"who": "myname@gmail.com", "kind": "customer.create", "tag": "<b>"}'
    )
    assert "&lt;b&gt;" in fragment.text and "<b>" not in fragment.text
    assert f'<strong>POST</strong> <span class="url">{python_receiver.url}</span>' in (
        fragment.text
    )
    assert "<code>Authorization</code></th><td><code>[redacted]</code>" in fragment.text
    no_secret_in(fragment)
    page = await client.get(path, params={"event_type": "customer.create"})
    assert "<html" in page.text and 'id="preview-body"' in page.text
    assert python_receiver.requests == []  # nothing sent
    other = await client.get(
        path, params={"event_type": "subscriber.create"}, headers={"HX-Request": "true"}
    )
    assert other.status_code == 422 and "event_type" in other.text


async def test_a_bad_filter_or_template_is_shown_by_its_field(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient], python_receiver: PythonReceiver
) -> None:
    token = await served.operator_at("loc-1")
    client, csrf = await signed_in(browsers, token)
    webhook = await served.webhook(token, "loc-1", python_receiver.url)
    edit = edit_form(csrf, python_receiver.url)
    refused = await client.post(
        f"/ui/webhooks/{webhook['id']}", data={**edit, "filter": '{"amount": {"$foo": 1}}'}
    )
    assert refused.status_code == 422
    assert "unknown operator $foo" in field_error(refused, "opt-filter")
    assert "$foo" in refused.text  # the filter as typed, to fix
    not_json = await client.post(
        f"/ui/webhooks/{webhook['id']}", data={**edit, "filter": '{"amount": '}
    )
    assert "is not JSON" in field_error(not_json, "opt-filter")
    bad_template = await client.post(
        f"/ui/webhooks/{webhook['id']}",
        data={**edit, "template_body": '{"a": {{ data.email }'},
    )
    assert bad_template.status_code == 422
    assert "line 1" in field_error(bad_template, "opt-template")
    bad_statuses = await client.post(
        f"/ui/webhooks/{webhook['id']}", data={**edit, "success_statuses": "ok"}
    )
    assert "2xx" in field_error(bad_statuses, "opt-success")
    unchanged = await served.ok("GET", f"/v1/webhooks/{webhook['id']}", token)
    assert unchanged["filter"] is None and unchanged["template"] is None


async def test_another_operators_webhook_has_no_preview_or_edit_here(
    served: LiveAPI, browsers: Callable[..., httpx.AsyncClient], python_receiver: PythonReceiver
) -> None:
    first = await served.hooked("loc-1", python_receiver.url, name="acme")
    second = await served.operator_at("loc-2", name="globex")
    client, csrf = await signed_in(browsers, second)
    preview = await client.get(f"/ui/webhooks/{first.webhook['id']}/preview")
    assert preview.status_code == 404
    edited = await client.post(
        f"/ui/webhooks/{first.webhook['id']}",
        data={
            "csrf_token": csrf,
            "callback_url": python_receiver.url,
            "location_ids": "loc-2",
            "event_types": "customer.create",
            "auth_type": "",
        },
    )
    assert edited.status_code == 404
    without_csrf = await client.post(
        "/ui/webhooks/new", data={"preset": "slack", "location_ids": "loc-2"}
    )
    assert without_csrf.status_code == 403
