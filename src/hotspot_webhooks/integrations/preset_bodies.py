"""The request bodies the built-in presets send: sandboxed Jinja2 sources, one per provider.

Each body is rendered with the template context of §9 (``event``, ``data``, ``location`` and the
``tojson`` filter) and must work for all six hotspot types, with any field null. The sources
only use what the sandbox allows: ``dict.get``, literals, filters and loops, never a method
that changes a value. Every string that reaches JSON goes through ``tojson``, so a guest's
name can never break out of its string, and every tag trims its whitespace so the output is
the same whatever ``trim_blocks`` the environment sets.

The chat messages (Slack, Discord, Teams) share one prelude that words the event for a person:
``headline`` ("New guest Jane Doe (jane@example.com) at Lobby") and ``details`` (label and
value pairs, left out where the value is null). Each value is clipped, so a message stays
within the provider's limits however long a guest's input is, and escaped for the provider's
markup, so a guest cannot ping a channel or plant a link.
"""

from __future__ import annotations

# Slack's mrkdwn: "&", "<" and ">" are control characters and must be sent as HTML entities
# (https://docs.slack.dev/messaging/formatting-message-text/#escaping); escaping "<" also keeps
# "<!channel>" from pinging anyone.
SLACK_ESCAPE = '|replace("&", "&amp;")|replace("<", "&lt;")|replace(">", "&gt;")'

# Discord markdown: a backslash escapes the next character
# (https://support.discord.com/hc/en-us/articles/210298617). The backslash goes first so the
# ones added after are not doubled. Mentions are switched off in the body (allowed_mentions).
DISCORD_ESCAPE = "".join(
    [r'|replace("\\", "\\\\")'] + [f'|replace("{c}", "\\\\{c}")' for c in "*_~`|[]()<>#"]
)

# Adaptive Cards render a small Markdown subset (bold, italic, lists, [text](url) links) and
# document no escape character. A space between "]" and "(" is no longer a link, so a guest
# cannot dress a link up as text in the operators' channel; the rest is shown as typed.
TEAMS_ESCAPE = '|replace("](", "] (")'

# for tools that pass the text on to a step of their user's choosing
NO_ESCAPE = ""


def prelude(escape: str) -> str:
    """``headline`` and ``details`` for a person to read, values clipped and escaped."""
    return (
        # v(): a value as text, clipped to `width` characters, escaped for the provider
        "{%- macro v(value, width=120) -%}"
        '{{- (value|string)|truncate(width, true, "…", 0)' + escape + " -}}"
        "{%- endmacro -%}"
        '{%- set name = data.get("name") or data.get("customer") -%}'
        '{%- set email = data.get("email") -%}'
        "{%- if name and email -%}"
        '{%- set who = v(name, 80) ~ " (" ~ v(email, 80) ~ ")" -%}'
        "{%- elif name or email -%}"
        "{%- set who = v(name or email, 80) -%}"
        '{%- elif data.get("social_username") -%}'
        '{%- set who = v(data.get("social_username"), 80) -%}'
        "{%- else -%}"
        '{%- set who = "" -%}'
        "{%- endif -%}"
        '{%- set Who = who or "A guest" -%}'
        '{%- set someone = (" " ~ who) if who else "" -%}'
        "{%- set where = v(location.name or event.location_id, 80) -%}"
        '{%- set network = data.get("social_network") -%}'
        '{%- set networks = {"facebook": "Facebook", "twitter": "Twitter", "google": "Google",'
        ' "linkedin": "LinkedIn", "instagram": "Instagram", "vkontakte": "VK"} -%}'
        '{%- set amount = data.get("amount") -%}'
        '{%- set currency = data.get("currency") -%}'
        "{%- set t = event.type -%}"
        '{%- if t == "customer.create" -%}'
        '{%- set headline = "New guest" ~ someone ~ " at " ~ where -%}'
        '{%- elif t == "subscriber.create" -%}'
        '{%- set headline = "New newsletter subscriber" ~ someone ~ " at " ~ where -%}'
        '{%- elif t == "transaction.paid.create" -%}'
        '{%- set paid = (" " ~ v(amount, 20) ~ (" " ~ v(currency, 10) if currency else ""))'
        ' if amount else "" -%}'
        '{%- set headline = Who ~ " paid" ~ paid ~ " for Wi-Fi at " ~ where -%}'
        '{%- elif t == "transaction.voucher.create" -%}'
        '{%- set headline = Who ~ " connected with a voucher at " ~ where -%}'
        '{%- elif t == "transaction.mac.create" -%}'
        '{%- set headline = Who ~ " connected at " ~ where ~ " (MAC login)" -%}'
        '{%- elif t == "transaction.social.create" -%}'
        '{%- set via = (" via " ~ v(networks.get(network|lower, network), 40)) if network else ""'
        " -%}"
        '{%- set headline = Who ~ " connected at " ~ where ~ via -%}'
        "{%- else -%}"
        '{%- set headline = "New " ~ v(t, 60) ~ " event at " ~ where -%}'
        "{%- endif -%}"
        "{%- set details = ["
        '("Phone", data.get("phone")),'
        '("Company", data.get("company_name")),'
        '("Address", data.get("address")),'
        '("Place", [data.get("city"), data.get("state"), data.get("zip"),'
        ' data.get("country_code")]|select|join(", ")),'
        '("Package", data.get("package_id")),'
        '("Newsletter", "yes" if data.get("newsletter") == "1" else none),'
        '("Profile", data.get("social_link")),'
        '(data.get("q1"), data.get("a1")),'
        '(data.get("q2"), data.get("a2")),'
        '(data.get("q3"), data.get("a3")),'
        '(data.get("q4"), data.get("a4")),'
        '(data.get("q5"), data.get("a5"))'
        "] -%}"
    )


# https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/ : {"text": ...}.
# 3,000 characters keeps the message whole on every client (Slack truncates text past 40,000
# and advises far less); the clipped values make it far shorter in practice.
SLACK = (
    prelude(SLACK_ESCAPE)
    + '{%- set text -%}{{ "*" ~ headline ~ "*" }}'
    + "{%- for label, value in details if label and value -%}"
    + '{{ "\\n" ~ v(label, 80) ~ ": " ~ v(value) }}'
    + "{%- endfor -%}{%- endset -%}"
    + '{{ {"text": text|truncate(3000, true, "…", 0)}|tojson }}'
)

# https://discord.com/developers/docs/resources/webhook#execute-webhook : "content" up to 2,000
# characters. Discord counts UTF-16 code units, so 1,000 code points can never exceed it.
# allowed_mentions {"parse": []} keeps "@everyone" in a guest's name from pinging anyone.
DISCORD = (
    prelude(DISCORD_ESCAPE)
    + '{%- set text -%}{{ "**" ~ headline ~ "**" }}'
    + "{%- for label, value in details if label and value -%}"
    + '{{ "\\n" ~ v(label, 80) ~ ": " ~ v(value) }}'
    + "{%- endfor -%}{%- endset -%}"
    + '{{ {"content": text|truncate(1000, true, "…", 0), "allowed_mentions": {"parse": []}}'
    + "|tojson }}"
)

# https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
# (#send-adaptive-cards-using-an-incoming-webhook): a "message" whose one attachment is an
# Adaptive Card; the same body works for a Workflows ("When a Teams webhook request is
# received") URL and a legacy incoming webhook. Teams refuses messages over 28 KB.
TEAMS = (
    prelude(TEAMS_ESCAPE)
    + "{%- set facts -%}"
    + "{%- for label, value in details if label and value -%}"
    + '{{ {"title": v(label, 80), "value": v(value)}|tojson }}{{ "," if not loop.last }}'
    + "{%- endfor -%}{%- endset -%}"
    + '{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",'
    + '"contentUrl":null,"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json",'
    + '"type":"AdaptiveCard","version":"1.4","body":['
    + '{{ {"type": "TextBlock", "text": headline, "weight": "Bolder", "size": "Medium",'
    + ' "wrap": true}|tojson }}'
    + '{%- if facts -%},{"type":"FactSet","facts":[{{ facts }}]}{%- endif -%}'
    + ',{{ {"type": "TextBlock", "text": v(t, 60) ~ " · " ~ v(event.created_at, 40),'
    + ' "isSubtle": true, "size": "Small", "spacing": "None", "wrap": true}|tojson }}'
    + "]}}]}"
)

# The first and last name from one "name" field: the first word, then the rest.
_NAMES = (
    '{%- set full = ((data.get("name") or data.get("customer") or "")|string)|trim -%}'
    "{%- set parts = full.split(none, 1) -%}"
    '{%- set first = parts[0] if parts else "" -%}'
    '{%- set last = parts[1] if parts|length > 1 else "" -%}'
)

# object(pairs): a JSON object of the pairs whose value is not empty. Written out rather than
# built with dict(), which a tightened sandbox may not offer.
_OBJECT = (
    "{%- macro object(pairs) -%}"
    "{ {%- for key, value in pairs if value -%}"
    '{{ key|tojson }}:{{ value|tojson }}{{ "," if not loop.last else "" }}'
    "{%- endfor -%} }"
    "{%- endmacro -%}"
)


def mailchimp(status: str) -> str:
    """https://mailchimp.com/developer/marketing/api/lists/batch-subscribe-or-unsubscribe/ :
    ``POST /3.0/lists/{list_id}`` ``{"members": [...], "update_existing": bool}``.

    A subscriber joins as ``status`` ("subscribed", or "pending" for double opt-in) and an
    existing member's status is updated; a customer, who gave no marketing consent, joins as
    "transactional" and an existing member (a subscriber, say) is left as it is. Empty merge
    fields are left out, so an event without a name never blanks the name Mailchimp has.
    """
    if status not in ("subscribed", "pending"):
        raise ValueError(f"a new subscriber is subscribed or pending, not {status!r}")
    return (
        _NAMES
        + _OBJECT
        + '{%- set subscriber = event.type == "subscriber.create" -%}'
        + "{%- set tag = ((location.name or event.location_id)|string)"
        + '|truncate(100, true, "", 0) -%}'
        + '{"members":[{"email_address":{{ data.get("email")|tojson }},'
        + '"status":{{ ("'
        + status
        + '" if subscriber else "transactional")|tojson }},'
        + '"merge_fields":{{ object([("FNAME", first|truncate(100, true, "", 0)),'
        + ' ("LNAME", last|truncate(100, true, "", 0))]) }},'
        + '"tags":{{ ([tag]|select|list)|tojson }}'
        + '}],"update_existing":{{ subscriber|tojson }}}'
    )


# https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/create-contact :
# POST /crm/v3/objects/contacts {"properties": {...}} with HubSpot's default contact
# properties. Null values are left out (HubSpot would store them as empty).
HUBSPOT = (
    _NAMES
    + _OBJECT
    + '{"properties":{{ object([("email", data.get("email")), ("firstname", first),'
    + ' ("lastname", last), ("phone", data.get("phone")), ("company", data.get("company_name")),'
    + ' ("address", data.get("address")), ("city", data.get("city")),'
    + ' ("state", data.get("state")), ("zip", data.get("zip")),'
    + ' ("country", data.get("country_code"))]) }}}'
)

# Our own Apps Script (docs/integrations.md) appends `row` to the tab named `sheet`, writing
# `headers` first on an empty tab. One tab per event type, so every column means one thing.
# Cells are cut at 2,000 characters: a row of the widest type (32 cells) then stays within the
# 256 KiB a template may render even in 4-byte characters (Sheets itself holds 50,000). Sheets
# reads a text that starts with "=", "+", "-" or "@" as a formula: such values get a leading
# apostrophe, which Sheets shows as plain text (a guest named "=IMPORTXML(...)" stays a name).
GOOGLE_SHEETS = (
    '{%- set headers = ["event_id", "event_type", "event_created_at", "event_location_id",'
    + ' "location_name"]'
    + " + data.keys()|list -%}"
    + "{%- set values = [event.id, event.type, event.created_at, event.location_id,"
    + " location.name] + data.values()|list -%}"
    + '{"sheet":{{ event.type|tojson }},"headers":{{ headers|tojson }},"row":['
    + "{%- for value in values -%}"
    + "{%- if value is none -%}null"
    + "{%- else -%}"
    + '{%- set text = (value|string)|truncate(2000, true, "…", 0) -%}'
    + '{{ ("\'" ~ text if text[:1] in ["=", "+", "-", "@"] else text)|tojson }}'
    + "{%- endif -%}"
    + '{{ "," if not loop.last }}'
    + "{%- endfor -%}"
    + "]}"
)

# Automation tools (Zapier, n8n) take any JSON and let their user map the fields: the event,
# its location and the payload as they are, nested, plus the chat presets' sentence as
# `summary` for a step that posts a message. No markup escaping: the tool's user decides
# where the text goes.
AUTOMATION = (
    prelude(NO_ESCAPE)
    + '{{ {"summary": headline,'
    + ' "event": {"id": event.id, "type": event.type, "location_id": event.location_id,'
    + ' "created_at": event.created_at},'
    + ' "location": {"id": location.id, "name": location.name},'
    + ' "data": data}|tojson }}'
)
