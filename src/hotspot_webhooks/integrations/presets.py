"""Built-in integrations: a webhook that speaks a provider's API, filled from a few answers.

A ``Preset`` knows which event types it fits, the auth its provider wants and the form fields
the control center asks for (a Slack webhook URL; Mailchimp's data center, audience id and API
key). ``configure(values)`` checks those answers and returns a ``PresetConfig``: the callback
URL, the request body template (``preset_bodies``), the auth, any headers, the statuses that
mean success when the provider does not answer 200, and a filter for events the provider
would refuse. The service stores these on the webhook like any other options (§9): a preset is
a shortcut, not a second kind of webhook.

Success statuses, decided per provider from its documented answers (redirects are never
followed, §2):

- Slack answers ``200 ok``; Discord ``200`` with the message when asked to ``wait`` (we ask,
  so a message Discord could not save is not taken for a success), ``204`` otherwise.
- Teams: a Workflows URL answers ``202 Accepted``, a legacy incoming webhook ``200``.
- Mailchimp's batch subscribe answers ``200``; HubSpot's create answers ``201 Created``, and
  ``409 Conflict`` when a contact with that email exists, which is the state we wanted
  (and what a retry after a lost answer meets), so it counts as success.
- An Apps Script web app runs ``doPost`` and answers ``302`` to a one-time URL on
  script.googleusercontent.com holding the script's output; a script that throws answers
  ``200`` with an error page instead. Only ``302`` is success, so a failing script is retried
  and shown, not counted as delivered.
- Zapier's Catch Hook and n8n's Webhook node answer ``200`` on receipt, before their flow runs.

Pure: no I/O. ``describe()`` is the shape of ``GET /v1/integrations``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..catalog import EVENT_TYPES
from ..errors import InvalidInput, field_error
from ..validation import invalid
from . import preset_bodies

AuthKind = Literal["basic", "bearer", "oauth2"]
JSON = "application/json"
ALL_TYPES = tuple(EVENT_TYPES)
PEOPLE = ("customer.create", "subscriber.create")


def has_email() -> dict[str, Any]:
    """The filter (§9) of a preset whose provider files people by email: only events that
    carry one, so a guest without an address is not refused 21 times over."""
    return {"email": {"$nin": [None, ""]}}


@dataclass(frozen=True)
class PresetField:
    """One answer the control center asks for. ``pattern`` is anchored and written so that
    Python's ``re`` and an HTML ``pattern`` attribute (a JavaScript RegExp with the ``v`` flag,
    where "-" and "/" in a character class must be escaped) read it the same way."""

    name: str
    label: str
    help: str
    pattern: str
    secret: bool = False
    choices: tuple[str, ...] = ()
    default: str | None = None  # a field with a default may be left out (or blank)
    example: str = ""

    def describe(self) -> dict[str, Any]:
        shape: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "help": self.help,
            "secret": self.secret,
            "pattern": self.pattern,
            "required": self.default is None,
        }
        if self.choices:
            shape["choices"] = list(self.choices)
        if self.default is not None:
            shape["default"] = self.default
        if self.example:
            shape["example"] = self.example
        return shape


@dataclass(frozen=True)
class PresetConfig:
    """What a preset fills in on a webhook."""

    callback_url: str
    template: Mapping[str, str]
    auth: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    success_statuses: str | None = None  # like the setting: "201,409"; None: exactly 200
    filter: Mapping[str, Any] | None = None
    preset: str = ""  # the preset's name, set by Preset.configure

    def webhook_options(self) -> dict[str, Any]:
        """The options as a webhook create request names them (§9)."""
        options: dict[str, Any] = {
            "preset": self.preset or None,
            "callback_url": self.callback_url,
            "template": dict(self.template),
            "auth": None if self.auth is None else dict(self.auth),
            "headers": dict(self.headers),
        }
        if self.success_statuses is not None:
            options["success_statuses"] = self.success_statuses
        if self.filter is not None:
            options["filter"] = copy.deepcopy(dict(self.filter))
        return options


@dataclass(frozen=True)
class Preset:
    """A built-in integration: the provider, the types it fits, the auth and the form."""

    name: str
    title: str
    description: str
    event_types: tuple[str, ...]
    auth: AuthKind | None
    fields: tuple[PresetField, ...]
    build: Callable[[Mapping[str, str], str], PresetConfig] = field(repr=False)
    reference: str = ""  # the provider's API reference for the request we send

    def configure(self, values: Mapping[str, Any], *, prefix: str = "") -> PresetConfig:
        """Check the form's answers and fill in the webhook. Every bad answer is named
        (``prefix`` + the field's name), all at once."""
        if not isinstance(values, Mapping):
            raise invalid(prefix.rstrip(".") or "values", "must be an object of answers")
        known = {f.name for f in self.fields}
        problems = [
            field_error(f"{prefix}{key}", f"not a field of the {self.name} preset")
            for key in values
            if key not in known
        ]
        clean: dict[str, str] = {}
        for spec in self.fields:
            value = values.get(spec.name)
            name = f"{prefix}{spec.name}"
            blank = value is None or (isinstance(value, str) and not value.strip())
            if spec.default is not None and blank:
                clean[spec.name] = spec.default  # an optional field left blank
            elif blank:
                problems.append(field_error(name, f"required: {spec.help}"))
            elif not isinstance(value, str):
                problems.append(field_error(name, "must be a string"))
            elif spec.choices and value.strip() not in spec.choices:
                problems.append(field_error(name, f"must be one of {', '.join(spec.choices)}"))
            elif not re.fullmatch(spec.pattern, value.strip()):
                problems.append(field_error(name, _shape_message(spec)))
            else:
                clean[spec.name] = value.strip()
        if problems:
            raise _invalid_answers(self.name, problems)
        return dataclasses.replace(self.build(clean, prefix), preset=self.name)

    def describe(self) -> dict[str, Any]:
        """This preset in ``GET /v1/integrations``."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "event_types": list(self.event_types),
            "auth": self.auth,
            "fields": [f.describe() for f in self.fields],
        }


def _shape_message(spec: PresetField) -> str:
    if spec.example:
        return f"does not look like {spec.label.lower()} (like {spec.example})"
    return f"does not look like {spec.label.lower()}"


def _invalid_answers(preset: str, problems: list[dict[str, Any]]) -> InvalidInput:
    if len(problems) == 1:
        return invalid(problems[0]["field"], problems[0]["message"])
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidInput(f"invalid answers for the {preset} preset: {listed}", details=problems)


def _template(body: str) -> dict[str, str]:
    return {"body": body, "content_type": JSON}


# --- the presets -----------------------------------------------------------------------------


def _slack(values: Mapping[str, str], prefix: str) -> PresetConfig:
    return PresetConfig(values["webhook_url"], _template(preset_bodies.SLACK))


def _discord(values: Mapping[str, str], prefix: str) -> PresetConfig:
    # wait=true: Discord answers 200 with the saved message instead of 204 before saving it
    # (https://discord.com/developers/docs/resources/webhook#execute-webhook-query-string-params)
    return PresetConfig(values["webhook_url"] + "?wait=true", _template(preset_bodies.DISCORD))


def _teams(values: Mapping[str, str], prefix: str) -> PresetConfig:
    return PresetConfig(
        values["workflow_url"], _template(preset_bodies.TEAMS), success_statuses="200,202"
    )


def _mailchimp(values: Mapping[str, str], prefix: str) -> PresetConfig:
    center, api_key = values["data_center"], values["api_key"]
    key_center = api_key.rsplit("-", 1)[1]
    if key_center != center:
        # Mailchimp answers 401 to a key sent to another data center; say so now, not 21
        # failed attempts later (https://mailchimp.com/developer/marketing/docs/fundamentals/)
        raise invalid(
            f"{prefix}data_center",
            f"must be {key_center}, the data center at the end of the API key",
        )
    status = "pending" if values["double_opt_in"] == "yes" else "subscribed"
    return PresetConfig(
        f"https://{center}.api.mailchimp.com/3.0/lists/{values['list_id']}",
        _template(preset_bodies.mailchimp(status)),
        # Mailchimp: HTTP basic auth, any user name, the API key as password
        auth={"type": "basic", "username": "hotspot-webhooks", "password": api_key},
        filter=has_email(),
    )


def _hubspot(values: Mapping[str, str], prefix: str) -> PresetConfig:
    return PresetConfig(
        "https://api.hubapi.com/crm/v3/objects/contacts",
        _template(preset_bodies.HUBSPOT),
        auth={"type": "bearer", "token": values["access_token"]},
        success_statuses="201,409",
        filter=has_email(),
    )


def _google_sheets(values: Mapping[str, str], prefix: str) -> PresetConfig:
    return PresetConfig(
        values["web_app_url"], _template(preset_bodies.GOOGLE_SHEETS), success_statuses="302"
    )


def _zapier(values: Mapping[str, str], prefix: str) -> PresetConfig:
    return PresetConfig(values["webhook_url"], _template(preset_bodies.AUTOMATION))


def _n8n(values: Mapping[str, str], prefix: str) -> PresetConfig:
    name, value = values["header_name"], values["header_value"]
    if bool(name) != bool(value):
        # the Webhook node's Header Auth wants both; one alone is a half-filled form
        missing = "header_value" if name else "header_name"
        raise invalid(f"{prefix}{missing}", "required with the other header field")
    return PresetConfig(
        values["webhook_url"],
        _template(preset_bodies.AUTOMATION),
        headers={name: value} if name else {},
    )


_SLACK_URL = r"^https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+$"
_DISCORD_URL = (
    r"^https://(discord|discordapp|ptb\.discord|canary\.discord)\.com/api/(v[0-9]+/)?"
    r"webhooks/[0-9]+/[A-Za-z0-9_\-]+$"
)
_TEAMS_URL = (
    r"^https://[A-Za-z0-9.\-]+\.(logic\.azure\.com|api\.powerplatform\.com|webhook\.office\.com)"
    r"(:443)?/[^\s]+$"
)
_APPS_SCRIPT_URL = (
    r"^https://script\.google\.com/(a/macros/[A-Za-z0-9.\-]+|macros)/s/[A-Za-z0-9_\-]+/exec$"
)
_ZAPIER_URL = r"^https://hooks\.zapier\.com/hooks/catch/[0-9]+/[A-Za-z0-9]+/?$"
# the production URL (/webhook/...), not the test URL (/webhook-test/...), which only listens
# while the editor waits for a test event
_N8N_URL = r"^https?://[^\s\/?#]+/webhook/[^\s?#]+$"
_MAILCHIMP_CENTER = r"^[a-z]{2,4}[0-9]{1,3}$"

_URL_HELP = "Treat it like a password: whoever has it can send to it."

PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        p.name: p
        for p in (
            Preset(
                "slack",
                "Slack",
                "Post a message to a Slack channel through an incoming webhook.",
                ALL_TYPES,
                None,
                (
                    PresetField(
                        "webhook_url",
                        "Webhook URL",
                        "Your Slack app's incoming webhook URL (Features > Incoming Webhooks). "
                        + _URL_HELP,
                        _SLACK_URL,
                        example="https://hooks.slack.com/services/T000/B000/XXXX",
                    ),
                ),
                _slack,
                "https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/",
            ),
            Preset(
                "discord",
                "Discord",
                "Post a message to a Discord channel through a channel webhook.",
                ALL_TYPES,
                None,
                (
                    PresetField(
                        "webhook_url",
                        "Webhook URL",
                        "Channel settings > Integrations > Webhooks > Copy Webhook URL. "
                        + _URL_HELP,
                        _DISCORD_URL,
                        example="https://discord.com/api/webhooks/1234/abcd",
                    ),
                ),
                _discord,
                "https://discord.com/developers/docs/resources/webhook#execute-webhook",
            ),
            Preset(
                "teams",
                "Microsoft Teams",
                "Post an Adaptive Card to a Teams channel through a Workflows webhook.",
                ALL_TYPES,
                None,
                (
                    PresetField(
                        "workflow_url",
                        "Workflow URL",
                        "The URL of a Teams workflow started by 'When a Teams webhook request "
                        "is received' (or a legacy incoming webhook URL). " + _URL_HELP,
                        _TEAMS_URL,
                        example="https://prod-00.westus.logic.azure.com:443/workflows/...",
                    ),
                ),
                _teams,
                "https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/"
                "how-to/add-incoming-webhook",
            ),
            Preset(
                "mailchimp",
                "Mailchimp",
                "Add or update an audience member for each new subscriber (subscribed) and "
                "customer (transactional: no marketing consent implied).",
                PEOPLE,
                "basic",
                (
                    PresetField(
                        "data_center",
                        "Data center",
                        "The end of your API key and of your Mailchimp address, like us6.",
                        _MAILCHIMP_CENTER,
                        example="us6",
                    ),
                    PresetField(
                        "list_id",
                        "Audience ID",
                        "Audience > Settings > Audience name and defaults > Audience ID.",
                        r"^[A-Za-z0-9]{4,32}$",
                        example="a1b2c3d4e5",
                    ),
                    PresetField(
                        "api_key",
                        "API key",
                        "Profile > Extras > API keys > Create A Key.",
                        r"^[0-9a-f]{32}-[a-z]{2,4}[0-9]{1,3}$",
                        secret=True,
                        example="0123456789abcdef0123456789abcdef-us6",
                    ),
                    PresetField(
                        "double_opt_in",
                        "Double opt-in",
                        "yes: Mailchimp emails each new subscriber to confirm (status pending).",
                        r"^(yes|no)$",
                        choices=("no", "yes"),
                        default="no",
                    ),
                ),
                _mailchimp,
                "https://mailchimp.com/developer/marketing/api/lists/batch-subscribe-or-unsubscribe/",
            ),
            Preset(
                "hubspot",
                "HubSpot",
                "Create a HubSpot contact for each guest with an email address.",
                ALL_TYPES,
                "bearer",
                (
                    PresetField(
                        "access_token",
                        "Private app access token",
                        "Settings > Integrations > Private apps, with the scope "
                        "crm.objects.contacts.write.",
                        r"^pat-[a-z0-9]+-[A-Za-z0-9\-]{20,}$",
                        secret=True,
                        example="pat-na1-00000000-0000-0000-0000-000000000000",
                    ),
                ),
                _hubspot,
                "https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/"
                "contacts/create-contact",
            ),
            Preset(
                "google-sheets",
                "Google Sheets",
                "Append one row per event to a Google Sheet, through a small Apps Script web "
                "app (docs/integrations.md has the script).",
                ALL_TYPES,
                None,
                (
                    PresetField(
                        "web_app_url",
                        "Web app URL",
                        "Deploy > New deployment > Web app, execute as you, access: Anyone. "
                        + _URL_HELP,
                        _APPS_SCRIPT_URL,
                        example="https://script.google.com/macros/s/AKfy.../exec",
                    ),
                ),
                _google_sheets,
                "https://developers.google.com/apps-script/guides/web",
            ),
            Preset(
                "zapier",
                "Zapier",
                "Start a Zap for each event, through a Webhooks by Zapier 'Catch Hook' trigger.",
                ALL_TYPES,
                None,
                (
                    PresetField(
                        "webhook_url",
                        "Catch Hook URL",
                        "In the Zap's trigger: Webhooks by Zapier > Catch Hook, copy the URL. "
                        + _URL_HELP,
                        _ZAPIER_URL,
                        example="https://hooks.zapier.com/hooks/catch/123456/abcdef/",
                    ),
                ),
                _zapier,
                "https://help.zapier.com/hc/en-us/articles/8496288690317",
            ),
            Preset(
                "n8n",
                "n8n",
                "Start an n8n workflow for each event, through its Webhook node.",
                ALL_TYPES,
                None,
                (
                    PresetField(
                        "webhook_url",
                        "Production URL",
                        "The Webhook node's Production URL (/webhook/..., not /webhook-test/), "
                        "HTTP method POST, workflow active.",
                        _N8N_URL,
                        example="https://n8n.example.com/webhook/hotspot-events",
                    ),
                    PresetField(
                        "header_name",
                        "Auth header name",
                        "If the node uses Header Auth: the credential's header name.",
                        r"^[A-Za-z0-9\-]{1,64}$",
                        default="",
                        example="X-N8N-Token",
                    ),
                    PresetField(
                        "header_value",
                        "Auth header value",
                        "If the node uses Header Auth: the credential's value.",
                        r"^[\x21-\x7e][\x20-\x7e]{0,1023}$",
                        secret=True,
                        default="",
                    ),
                ),
                _n8n,
                "https://docs.n8n.io/integrations/builtin/core-nodes/n8n-nodes-base.webhook/",
            ),
        )
    }
)


def get_preset(name: str, *, field: str = "preset") -> Preset:
    """The preset called ``name``, or an error listing the known ones."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise invalid(
            field,
            "unknown preset",
            headline=f"unknown preset {name!r}; expected one of: " + ", ".join(PRESETS),
        ) from None


def describe() -> list[dict[str, Any]]:
    """Every preset, as ``GET /v1/integrations`` lists them."""
    return [preset.describe() for preset in PRESETS.values()]
