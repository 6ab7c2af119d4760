"""The command line for what a webhook does beyond SPEC §2 (§9), run as a user runs it: headers
and auth (a secret from a file or standard input, never shown back), a filter, a template from
a file, `webhooks preview`, `--clear`, `integrations list`, and a webhook made from a preset's
answers (`--preset mailchimp --set ...`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli

PRIVATE = {"HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true"}
SECRET = "s3cret-bearer-from-a-file"


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_json(db: str, *args: str, input: str | None = None) -> Any:
    return json.loads(ok(run_cli(*args, "--json", db=db, env=PRIVATE, input=input)))


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hooks.db'}"
    ok(run_cli("migrate", db=url))
    as_json(url, "operators", "create", "acme")
    as_json(url, "locations", "create", "loc-1", "--name", "Lobby", "--operator", "acme")
    return url


def test_a_webhook_with_headers_auth_filter_and_template_from_files(
    db: str, tmp_path: Path
) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"type": "bearer", "token": SECRET}))
    template = tmp_path / "contact.j2"
    template.write_text('{"email": {{ data.email|tojson }}, "at": {{ location.name|tojson }}}\n')
    created = as_json(
        db,
        "webhooks", "create", "--location", "loc-1", "--event", "customer.create",
        "--url", "http://127.0.0.1:9/crm",
        "--description", "CRM contacts",
        "--metadata", "team=growth",
        "--header", "X-Tenant=-",  # the value from standard input
        "--auth", f"@{auth}",
        "--filter", '{"email": {"$exists": true}}',
        "--template", f"@{template}",
        "--success-statuses", "201,409",
        input="acme-42\n",
    )  # fmt: skip
    assert created["headers"] == {"X-Tenant": "[redacted]"}
    assert created["auth"] == {"type": "bearer"}
    assert created["filter"] == {"email": {"$exists": True}}
    assert created["template"]["body"].startswith('{"email"')
    assert (created["description"], created["metadata"]) == ("CRM contacts", {"team": "growth"})
    assert created["success_statuses"] == "201,409"
    shown = ok(run_cli("webhooks", "show", created["id"], db=db))
    assert SECRET not in shown and "acme-42" not in shown

    preview = as_json(db, "webhooks", "preview", created["id"])
    assert json.loads(preview["body"]) == {"email": "myname@gmail.com", "at": "Sample location"}
    assert preview["headers"]["Authorization"] == "[redacted]"
    assert preview["headers"]["X-Tenant"] == "[redacted]"
    printed = ok(run_cli("webhooks", "preview", created["id"], db=db))
    assert printed.startswith("POST http://127.0.0.1:9/crm")
    assert '{"email": "myname@gmail.com"' in printed and SECRET not in printed

    cleared = as_json(
        db, "webhooks", "update", created["id"], "--clear", "filter", "--clear", "auth"
    )
    assert (cleared["filter"], cleared["auth"]) == (None, None)
    assert cleared["headers"] == {"X-Tenant": "[redacted]"}  # what was not cleared stays


def test_a_bad_filter_or_template_is_refused_naming_the_field(db: str) -> None:
    base = ("webhooks", "create", "--location", "loc-1", "--event", "customer.create")
    refused = run_cli(
        *base,
        "--url",
        "http://127.0.0.1:9/x",
        "--filter",
        '{"a": {"$near": 1}}',
        db=db,
        env=PRIVATE,
    )
    assert refused.returncode != 0 and "$near" in refused.stderr, refused.stderr
    refused = run_cli(
        *base, "--url", "http://127.0.0.1:9/x", "--template", "{{ data.emial }}", db=db, env=PRIVATE
    )
    assert refused.returncode != 0 and "template" in refused.stderr, refused.stderr


def test_integrations_list_and_a_webhook_made_from_a_presets_answers(db: str) -> None:
    listed = as_json(db, "integrations", "list")["data"]
    names = {each["name"] for each in listed}
    assert {"slack", "discord", "teams", "mailchimp", "hubspot", "google-sheets"} <= names
    table = ok(run_cli("integrations", "list", db=db))
    assert "mailchimp" in table and "basic" in table

    mailchimp = next(each for each in listed if each["name"] == "mailchimp")
    fields = {field["name"] for field in mailchimp["fields"]}
    assert {"data_center", "list_id", "api_key"} <= fields
    key = "0123456789abcdef0123456789abcdef-us6"
    created = as_json(
        db,
        "webhooks", "create", "--location", "loc-1", "--event", "subscriber.create",
        "--preset", "mailchimp",
        "--set", "data_center=us6", "--set", "list_id=a1b2c3d4e5", "--set", "api_key=-",
        input=key + "\n",
    )  # fmt: skip
    assert created["preset"] == "mailchimp"
    assert created["callback_url"].startswith("https://us6.api.mailchimp.com/3.0/lists/a1b2c3d4e5")
    assert created["auth"]["type"] == "basic" and key not in json.dumps(created)
    assert created["template"] is not None
