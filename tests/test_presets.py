"""The built-in presets, each against a local stand-in that enforces its provider's documented
request (``tests/standins``): every preset, for every event type it fits, renders the type's
sample into valid JSON that its stand-in accepts, over real HTTP with the preset's auth; the
stand-ins refuse what the providers refuse; ``configure`` names each bad answer; messages read
well and stay within the providers' limits whatever a guest types.

Bodies are rendered by the sandboxed renderer itself (``tests/preset_render.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.catalog import EVENT_TYPES
from hotspot_webhooks.config import parse_success_statuses
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.integrations.presets import PRESETS, PresetConfig, describe, get_preset
from tests.preset_render import render
from tests.standins import Answer, StandIn, deliver
from tests.standins.discord import Discord, utf16_length
from tests.standins.google_sheets import AppsScript
from tests.standins.hubspot import HubSpot
from tests.standins.mailchimp import Mailchimp
from tests.standins.n8n import N8n
from tests.standins.slack import Slack
from tests.standins.teams import Teams
from tests.standins.zapier import Zapier

N8N_HEADER = ("X-N8N-Token", "n8n-header-credential-value")

# each preset's stand-in, and the answers its form gets for that stand-in's account
STANDINS: dict[str, tuple[Callable[[], StandIn], Callable[[Any], dict[str, str]]]] = {
    "slack": (Slack, lambda s: {"webhook_url": s.webhook_url}),
    "discord": (Discord, lambda s: {"webhook_url": s.webhook_url}),
    "teams": (Teams, lambda s: {"workflow_url": s.workflow_url}),
    "mailchimp": (
        Mailchimp,
        lambda s: {"data_center": s.data_center, "list_id": s.list_id, "api_key": s.api_key},
    ),
    "hubspot": (HubSpot, lambda s: {"access_token": s.token}),
    "google-sheets": (AppsScript, lambda s: {"web_app_url": s.web_app_url}),
    "zapier": (Zapier, lambda s: {"webhook_url": s.webhook_url}),
    "n8n": (
        lambda: N8n(header=N8N_HEADER),
        lambda s: {
            "webhook_url": s.webhook_url,
            "header_name": N8N_HEADER[0],
            "header_value": N8N_HEADER[1],
        },
    ),
}

FITS = [(p.name, t) for p in PRESETS.values() for t in p.event_types]


def succeeded(config: PresetConfig, answer: Answer) -> bool:
    """Whether a delivery attempt would count this answer as delivered."""
    return answer.status in parse_success_statuses(config.success_statuses or "200")


def configured(name: str, standin: StandIn, **overrides: str) -> PresetConfig:
    return PRESETS[name].configure({**STANDINS[name][1](standin), **overrides})


def test_every_preset_has_a_stand_in() -> None:
    assert set(STANDINS) == set(PRESETS)
    for preset in PRESETS.values():
        assert preset.event_types
        assert set(preset.event_types) <= set(EVENT_TYPES)


@pytest.mark.parametrize(("name", "event_type"), FITS)
async def test_each_preset_delivers_each_type_it_fits_to_its_stand_in(
    name: str, event_type: str
) -> None:
    async with STANDINS[name][0]() as standin:
        config = configured(name, standin)
        body = render(config.template["body"], event_type)
        json.loads(body)  # JSON content types must render valid JSON (§9)
        answer = await deliver(standin, config, body)
        assert succeeded(config, answer), (answer.status, answer.text)
        assert len(standin.accepted) == 1
        assert standin.accepted[0].json() == json.loads(body)


@pytest.mark.parametrize("name", list(PRESETS))
async def test_each_stand_in_refuses_a_wrong_credential(name: str) -> None:
    async with STANDINS[name][0]() as standin:
        config = configured(name, standin)
        body = render(config.template["body"], PRESETS[name].event_types[0])
        for attempt in _wrong_credentials(name, config):
            answer = await deliver(standin, config, body, **attempt)
            assert not succeeded(config, answer), (attempt, answer.status)
            assert answer.status in (401, 403, 404), (attempt, answer.status, answer.text)
        assert standin.accepted == []


def _wrong_credentials(name: str, config: PresetConfig) -> list[dict[str, Any]]:
    url = config.callback_url
    if name in ("slack", "discord"):  # the secret is the URL's last segment
        path, _, query = url.partition("?")
        head, _, secret = path.rpartition("/")
        wrong = f"{head}/{secret[:-4]}XXXX" + (f"?{query}" if query else "")
        return [{"callback_url": wrong}]
    if name == "teams":  # the secret is the URL's signature
        return [{"callback_url": re.sub(r"sig=[^&]+", "sig=forged", url)}]
    if name == "google-sheets":  # the secret is the deployment id
        return [{"callback_url": url.replace("/s/AKfy", "/s/AKfX")}]
    if name == "zapier":  # the secret is the hook id
        return [{"callback_url": url.replace("/3xq9zkt/", "/3xq9zkX/")}]
    if name == "n8n":  # the URL, and the node's Header Auth
        wrong = {"X-N8N-Token": "guessed"}
        return [{"callback_url": url + "-x"}, {"headers": {}}, {"headers": wrong}]
    if name == "mailchimp":
        wrong_key = "Basic " + "aG90c3BvdDpmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmLXVzNg=="
        other_center = url.replace("://us6.", "://us1.")
        return [
            {"headers": {}},
            {"headers": {"Authorization": wrong_key}},
            {"callback_url": other_center},
        ]
    if name == "hubspot":
        bearer = {"Authorization": "Bearer pat-na1-00000000-0000-0000-0000-000000000000"}
        return [{"headers": {}}, {"headers": bearer}]
    raise AssertionError(name)


# for each provider, a body without the field it requires, and its answer (the automation
# tools require no field: a body that is not JSON, then)
MISSING_FIELD: dict[str, tuple[str, int]] = {
    "slack": ('{"content": "no text"}', 400),  # Slack: "no_text"
    "discord": ('{"text": "no content"}', 400),  # Discord 50006: empty message
    "teams": ('{"type": "message"}', 400),  # no attachments
    "mailchimp": ('{"members": [{"email_address": "jane.doe@example.com"}]}', 400),  # no status
    "hubspot": ('{"properties": {"phone": "+5491123456789"}}', 400),  # no email or name
    "google-sheets": ('{"sheet": "customer.create", "row": ["evt_1"]}', 200),  # script throws
    "zapier": ('{"event": ', 400),
    "n8n": ('{"event": ', 422),
}
# the providers that read a JSON body whatever its content type says
ANY_CONTENT_TYPE = {"google-sheets", "zapier", "n8n"}


@pytest.mark.parametrize("name", list(PRESETS))
async def test_each_stand_in_refuses_a_body_missing_a_required_field(name: str) -> None:
    body, status = MISSING_FIELD[name]
    async with STANDINS[name][0]() as standin:
        config = configured(name, standin)
        answer = await deliver(standin, config, body)
        assert answer.status == status, answer.text
        assert not succeeded(config, answer)
        good = render(config.template["body"], PRESETS[name].event_types[0])
        as_text = await deliver(standin, config, good, content_type="text/plain")
        if name not in ANY_CONTENT_TYPE:
            assert not succeeded(config, as_text), as_text.status
        assert len(standin.accepted) == (1 if name in ANY_CONTENT_TYPE else 0)


N8N_URL = "https://n8n.example.com/webhook/hotspot-events"
BAD_ANSWERS: list[tuple[str, dict[str, str], str]] = [
    ("zapier", {"webhook_url": "https://hooks.zapier.com/hooks/standard/1/x/"}, "webhook_url"),
    ("n8n", {"webhook_url": "https://n8n.example.com/webhook-test/hotspot-events"}, "webhook_url"),
    ("n8n", {"webhook_url": N8N_URL, "header_name": "X-Token"}, "header_value"),
    ("n8n", {"webhook_url": N8N_URL, "header_value": "secret"}, "header_name"),
    ("n8n", {"webhook_url": N8N_URL, "header_name": "X Token", "header_value": "s"}, "header_name"),
    (
        "n8n",
        {"webhook_url": N8N_URL, "header_name": "X-T", "header_value": "a\r\nb"},
        "header_value",
    ),
    ("slack", {"webhook_url": "https://example.com/services/T1/B2/x"}, "webhook_url"),
    ("slack", {}, "webhook_url"),
    (
        "slack",
        {"webhook_url": "https://hooks.slack.com/services/T1/B2/x", "channel": "#a"},
        "channel",
    ),
    ("discord", {"webhook_url": "http://discord.com/api/webhooks/1/abc"}, "webhook_url"),
    ("teams", {"workflow_url": "https://evil.example/workflows/1"}, "workflow_url"),
    ("google-sheets", {"web_app_url": "https://script.google.com/macros/s/x/dev"}, "web_app_url"),
    ("hubspot", {"access_token": "not-a-token"}, "access_token"),
    (
        "mailchimp",
        {"data_center": "us1", "list_id": "a1b2c3d4e5", "api_key": "0" * 32 + "-us6"},
        "data_center",
    ),
    ("mailchimp", {"data_center": "us6", "list_id": "a1b2c3d4e5"}, "api_key"),
    (
        "mailchimp",
        {"data_center": "us6", "list_id": "a1/../b", "api_key": "0" * 32 + "-us6"},
        "list_id",
    ),
    (
        "mailchimp",
        {
            "data_center": "us6",
            "list_id": "a1b2c3d4e5",
            "api_key": "0" * 32 + "-us6",
            "double_opt_in": "maybe",
        },
        "double_opt_in",
    ),
]


@pytest.mark.parametrize(("name", "values", "field"), BAD_ANSWERS)
def test_configure_refuses_a_bad_answer_naming_its_field(
    name: str, values: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        PRESETS[name].configure(values, prefix="preset.values.")
    assert caught.value.status == 422
    assert [d["field"] for d in caught.value.details] == [f"preset.values.{field}"]
    assert field in caught.value.message


def test_n8n_header_auth_rides_in_the_webhook_headers() -> None:
    config = PRESETS["n8n"].configure(
        {"webhook_url": N8N_URL, "header_name": "X-N8N-Token", "header_value": "s3cret"}
    )
    assert config.headers == {"X-N8N-Token": "s3cret"}
    assert config.auth is None
    assert PRESETS["n8n"].configure({"webhook_url": N8N_URL}).headers == {}
    blank = {"webhook_url": N8N_URL, "header_name": " ", "header_value": ""}
    assert PRESETS["n8n"].configure(blank).headers == {}  # optional fields left blank


def test_configure_names_every_bad_answer_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        PRESETS["mailchimp"].configure({"data_center": "US 6", "list_id": ""})
    assert {d["field"] for d in caught.value.details} == {"data_center", "list_id", "api_key"}


def test_an_unknown_preset_is_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        get_preset("salesforce")
    assert caught.value.details[0]["field"] == "preset"
    assert "slack" in caught.value.message


def test_describe_lists_each_preset_with_its_types_auth_and_fields() -> None:
    listed = json.loads(json.dumps(describe()))
    assert [p["name"] for p in listed] == list(PRESETS)
    by_name = {p["name"]: p for p in listed}
    assert by_name["mailchimp"]["event_types"] == ["customer.create", "subscriber.create"]
    assert by_name["mailchimp"]["auth"] == "basic"
    assert by_name["hubspot"]["auth"] == "bearer"
    assert by_name["slack"]["auth"] is None
    assert [f["name"] for f in by_name["mailchimp"]["fields"]] == [
        "data_center", "list_id", "api_key", "double_opt_in",
    ]  # fmt: skip
    secret = {f["name"] for p in listed for f in p["fields"] if f["secret"]}
    assert secret == {"api_key", "access_token", "header_value"}
    for preset in listed:
        assert set(preset) == {"name", "title", "description", "event_types", "auth", "fields"}
        for field in preset["fields"]:
            # the same pattern serves Python and an HTML pattern attribute: no Python-only syntax
            assert field["pattern"].startswith("^") and field["pattern"].endswith("$")
            assert "(?" not in field["pattern"]
            re.compile(field["pattern"])
            if "example" in field and not field.get("choices"):
                assert "..." in field["example"] or re.fullmatch(field["pattern"], field["example"])


def test_field_patterns_compile_as_html_pattern_attributes() -> None:
    """Browsers compile a ``pattern`` attribute as ``new RegExp("^(?:" + p + ")$", "v")``, where
    an unescaped "-" or "/" in a character class is a syntax error and the check is dropped."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the patterns are checked with Python's re only")
    patterns = [f.pattern for p in PRESETS.values() for f in p.fields]
    script = (
        "const bad = JSON.parse(process.argv[1]).filter(p => {"
        ' try { new RegExp("^(?:" + p + ")$", "v"); return false; } catch (e) { return true; } });'
        " console.log(JSON.stringify(bad));"
    )
    result = subprocess.run(
        [node, "-e", script, json.dumps(patterns)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_presets_that_file_people_by_email_skip_events_without_one() -> None:
    for name in ("mailchimp", "hubspot"):
        config = PRESETS[name].configure(
            {"access_token": "pat-na1-6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"}
            if name == "hubspot"
            else {"data_center": "us6", "list_id": "a1b2c3d4e5", "api_key": "0" * 32 + "-us6"}
        )
        assert config.filter == {"email": {"$nin": [None, ""]}}
        options = config.webhook_options()
        assert options["filter"] == {"email": {"$nin": [None, ""]}}
        assert options["preset"] == name
        assert options["template"]["content_type"] == "application/json"


def test_success_statuses_follow_what_each_provider_answers() -> None:
    values = {
        name: STANDINS[name][1](STANDINS[name][0]()) for name in PRESETS
    }  # stand-ins not started: only their account details are read
    statuses = {name: PRESETS[name].configure(values[name]).success_statuses for name in PRESETS}
    assert statuses == {
        "slack": None,
        "discord": None,  # with ?wait=true Discord answers 200, not 204
        "teams": "200,202",
        "mailchimp": None,
        "hubspot": "201,409",
        "google-sheets": "302",
        "zapier": None,
        "n8n": None,
    }
    assert PRESETS["discord"].configure(values["discord"]).callback_url.endswith("?wait=true")


# --- what the messages say ------------------------------------------------------------------


def slack_text(event_type: str, data: Mapping[str, str | None] | None = None) -> str:
    config = PRESETS["slack"].configure({"webhook_url": Slack().webhook_url})
    text: str = json.loads(render(config.template["body"], event_type, data))["text"]
    return text


def test_a_chat_message_reads_as_a_sentence_about_the_guest() -> None:
    assert slack_text("transaction.social.create") == (
        "*Jane Doe (jane.doe@example.com) connected at Lobby Café via Facebook*\n"
        "Phone: +5491123456789\nPlace: Buenos Aires, AR\nPackage: 2\nNewsletter: yes\n"
        "Profile: https://www.facebook.com/jane.doe"
    )
    assert slack_text("subscriber.create").startswith(
        "*New newsletter subscriber Jane Doe (jane.doe@example.com) at Lobby Café*\n"
    )
    assert slack_text("transaction.paid.create").startswith(
        "*Jane Doe (jane.doe@example.com) paid 4.99 USD for Wi-Fi at Lobby Café*"
    )
    assert "A friend" in slack_text("transaction.mac.create")  # q1 / a1
    assert "How did you hear about us?: A friend" in slack_text("transaction.mac.create")


@pytest.mark.parametrize("event_type", list(EVENT_TYPES))
def test_a_chat_message_leaves_out_what_is_null(event_type: str) -> None:
    nothing = dict.fromkeys(EVENT_TYPES[event_type].fields)
    text = slack_text(event_type, nothing)
    assert "None" not in text and "null" not in text
    assert "\n" not in text  # no detail lines at all
    assert "Lobby Café" in text
    assert "  " not in text and " )" not in text


@pytest.mark.parametrize(("name", "event_type"), FITS)
def test_every_body_renders_valid_json_when_every_field_is_null(name: str, event_type: str) -> None:
    # the filter keeps Mailchimp and HubSpot from sending these, but a preview still renders
    config = PRESETS[name].configure(_DOC_VALUES[name])
    nothing = dict.fromkeys(EVENT_TYPES[event_type].fields)
    body = render(config.template["body"], event_type, nothing)
    assert isinstance(json.loads(body), dict)
    assert "None" not in body.replace('"spacing":"None"', "")  # Teams' spacing is meant


def test_guest_input_cannot_ping_a_channel_or_plant_a_link() -> None:
    data = dict(EVENT_TYPES["subscriber.create"].sample)
    data["name"] = "<!channel> @everyone [click](https://evil.example) *bold*"
    slack = slack_text("subscriber.create", data)
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
    discord = PRESETS["discord"].configure({"webhook_url": Discord().webhook_url})
    sent = json.loads(render(discord.template["body"], "subscriber.create", data))
    assert sent["allowed_mentions"] == {"parse": []}
    assert r"\[click\]\(https://evil.example\)" in sent["content"]
    assert r"\*bold\*" in sent["content"]
    teams = PRESETS["teams"].configure({"workflow_url": Teams().workflow_url})
    card = json.loads(render(teams.template["body"], "subscriber.create", data))
    headline = card["attachments"][0]["content"]["body"][0]["text"]
    assert "[click] (https://evil.example)" in headline


def _long_data(event_type: str, width: int) -> dict[str, str]:
    # every field long, with characters outside the BMP (two UTF-16 units each) and markup
    unit = "𝔊<&>@[x](y)*_é"
    return {
        name: (unit * (width // len(unit) + 1))[:width] for name in EVENT_TYPES[event_type].fields
    }


# how long every field is: far past each provider's limit, where the preset clips; the
# automation tools get the payload whole, so theirs stays within the 256 KiB a template renders
WIDTH = {"google-sheets": 60_000, "zapier": 2_000, "n8n": 2_000}


@pytest.mark.parametrize("name", list(PRESETS))
async def test_long_guest_input_stays_within_the_providers_limits(name: str) -> None:
    width = WIDTH.get(name, 10_000)
    async with STANDINS[name][0]() as standin:
        config = configured(name, standin)
        for event_type in PRESETS[name].event_types:
            data = _long_data(event_type, width)
            if name in ("hubspot", "mailchimp"):  # they refuse an address that is not one
                data["email"] = f"{event_type}@example.com"
            body = render(config.template["body"], event_type, data, location_name="Lobby " * 2_000)
            sent = json.loads(body)
            if name == "slack":
                assert len(sent["text"]) <= 3000
            if name == "discord":
                assert utf16_length(sent["content"]) <= 2000
            if name == "teams":
                assert len(body.encode()) <= 28 * 1024
            if name == "google-sheets":
                assert all(cell is None or len(cell) <= 2_000 for cell in sent["row"])
            if name in ("zapier", "n8n"):
                assert sent["data"] == data  # passed on whole
            if name == "mailchimp":
                member = sent["members"][0]
                assert all(len(tag) <= 100 for tag in member["tags"])
                assert all(len(value) <= 100 for value in member["merge_fields"].values())
            answer = await deliver(standin, config, body)
            assert succeeded(config, answer), (event_type, answer.status, answer.text[:300])


# --- what the providers end up holding --------------------------------------------------------


async def test_mailchimp_never_downgrades_a_subscriber_who_is_also_a_customer() -> None:
    async with Mailchimp() as mailchimp:
        config = configured("mailchimp", mailchimp)
        person = dict(EVENT_TYPES["subscriber.create"].sample)
        for event_type in ("subscriber.create", "customer.create"):
            data = {k: person.get(k) for k in EVENT_TYPES[event_type].fields}
            answer = await deliver(
                mailchimp, config, render(config.template["body"], event_type, data)
            )
            assert answer.status == 200
        member = mailchimp.members["jane.doe@example.com"]
        assert member["status"] == "subscribed"
        assert member["merge_fields"] == {"FNAME": "Jane", "LNAME": "Doe"}
        assert member["tags"] == [{"name": "Lobby Café"}]
        sent = [r.json() for r in mailchimp.accepted]
        assert sent[0]["update_existing"] is True
        assert sent[1]["members"][0]["status"] == "transactional"
        assert sent[1]["update_existing"] is False


async def test_mailchimp_double_opt_in_adds_subscribers_as_pending() -> None:
    async with Mailchimp() as mailchimp:
        config = configured("mailchimp", mailchimp, double_opt_in="yes")
        body = render(config.template["body"], "subscriber.create")
        assert (await deliver(mailchimp, config, body)).status == 200
        assert mailchimp.members["jane.doe@example.com"]["status"] == "pending"


async def test_hubspot_counts_a_second_event_for_the_same_guest_as_delivered() -> None:
    async with HubSpot() as hubspot:
        config = configured("hubspot", hubspot)
        first = await deliver(hubspot, config, render(config.template["body"], "subscriber.create"))
        again = await deliver(
            hubspot, config, render(config.template["body"], "transaction.paid.create")
        )
        assert (first.status, again.status) == (201, 409)
        assert succeeded(config, first) and succeeded(config, again)
        assert "Contact already exists" in again.json()["message"]
        (contact,) = hubspot.contacts.values()
        assert contact["properties"]["firstname"] == "Jane"
        assert contact["properties"]["lastname"] == "Doe"


async def test_google_sheets_writes_headers_once_and_a_repeated_event_once() -> None:
    async with AppsScript() as script:
        config = configured("google-sheets", script)
        body = render(config.template["body"], "transaction.paid.create")
        for _ in range(2):  # at-least-once: the same event may come twice
            answer = await deliver(script, config, body)
            assert answer.status == 302
            assert answer.headers["Location"].startswith("https://script.googleusercontent.com/")
        headers, *rows = script.sheets["transaction.paid.create"]
        assert headers[:5] == [
            "event_id", "event_type", "event_created_at", "event_location_id", "location_name",
        ]  # fmt: skip
        assert headers[5:] == list(EVENT_TYPES["transaction.paid.create"].fields)
        assert len(rows) == 1
        assert rows[0][headers.index("amount")] == "4.99"


def test_google_sheets_writes_formula_like_input_as_text() -> None:
    config = PRESETS["google-sheets"].configure({"web_app_url": AppsScript().web_app_url})
    data = dict(EVENT_TYPES["customer.create"].sample)
    data["name"] = '=IMPORTXML("https://evil.example", "//a")'
    row = json.loads(render(config.template["body"], "customer.create", data))["row"]
    headers = json.loads(render(config.template["body"], "customer.create", data))["headers"]
    assert row[headers.index("name")] == "'" + data["name"]
    assert row[headers.index("phone")] == "'+54"  # a phone number stays text
    assert row[headers.index("fb_id")] is None


# --- docs/integrations.md shows what the presets send ---------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
_SAMPLE = re.compile(r"<!-- sample: (\S+) (\S+) -->\n```json\n(.*?)\n```", re.DOTALL)
_DOC_VALUES = {
    "slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x"},
    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/x"},
    "teams": {"workflow_url": "https://prod-00.westus.logic.azure.com:443/workflows/1"},
    "mailchimp": {"data_center": "us6", "list_id": "a1b2c3d4e5", "api_key": "0" * 32 + "-us6"},
    "hubspot": {"access_token": "pat-na1-00000000-0000-0000-0000-000000000000"},
    "google-sheets": {"web_app_url": "https://script.google.com/macros/s/x/exec"},
    "zapier": {"webhook_url": "https://hooks.zapier.com/hooks/catch/1/x/"},
    "n8n": {"webhook_url": "https://n8n.example.com/webhook/hotspot-events"},
}


def test_the_samples_in_the_docs_are_what_the_presets_send() -> None:
    samples = _SAMPLE.findall(DOCS.read_text())
    assert {name for name, _, _ in samples} == set(PRESETS)
    for name, event_type, shown in samples:
        config = PRESETS[name].configure(_DOC_VALUES[name])
        sent = json.loads(render(config.template["body"], event_type))
        assert json.loads(shown) == sent, f"docs/integrations.md: {name} {event_type}"
