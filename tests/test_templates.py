"""Webhook templates (SPEC §9): sandboxed Jinja2 bodies, checked at create against each type's
sample, bounded in time, memory and size, rendered in sandbox processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotspot_webhooks.catalog import EVENT_TYPES, serialize
from hotspot_webhooks.errors import InvalidInput
from hotspot_webhooks.integrations.sandbox_pool import SandboxPool, SandboxProcess
from hotspot_webhooks.integrations.templates import (
    MAX_OUTPUT,
    MAX_SOURCE,
    RenderContext,
    RenderError,
    SandboxUnavailable,
    Template,
    TemplateRenderer,
    check_template,
    compile_template,
    render,
    sample_contexts,
)

SAMPLES = sample_contexts(EVENT_TYPES.values(), location_id="loc-7", location_name="Café Norte")

# One example per hotspot type: what docs/integrations.md shows.
EXAMPLES: dict[str, tuple[str, str]] = {
    "customer.create": (
        "application/json",
        """{"email": {{ data.email|tojson }}, "phone": {{ data.phone|tojson }},
 "country": {{ data.country_code|tojson }}, "mac": {{ data.UserName|tojson }},
 "source": {{ ("hotspot " ~ location.name)|tojson }}}""",
    ),
    "subscriber.create": (
        "application/json",
        """{"email_address": {{ data.email|tojson }}, "status": "subscribed",
 "merge_fields": {"FNAME": {{ (data.name or "")|tojson }}, "CITY": {{ data.city|tojson }}}}""",
    ),
    "transaction.paid.create": (
        "application/json",
        """{"reference": {{ data.id|tojson }}, "amount": {{ data.amount|float|tojson }},
 "currency": {{ data.currency|tojson }}, "date": {{ data.action_date_gmt|tojson }},
 "customer": {{ data.customer|tojson }}}""",
    ),
    "transaction.voucher.create": (
        "application/json",
        """{"text": {{ ("Voucher used at " ~ location.name ~ " by " ~ data.user_name)|tojson }}}""",
    ),
    "transaction.mac.create": (
        "application/x-www-form-urlencoded",
        "mac={{ data.user_name|urlencode }}&package={{ data.package_id|urlencode }}"
        "&answer={{ data.a1|urlencode }}",
    ),
    "transaction.social.create": (
        "application/json",
        """{"content": {{ ("New " ~ data.social_network ~ " login: " ~ data.social_username
 ~ " (" ~ data.social_followers_count ~ " followers)")|tojson }}}""",
    ),
}
EXPECTED: dict[str, object] = {
    "customer.create": {
        "email": "myname@gmail.com",
        "phone": "+54",
        "country": "AR",
        "mac": "BE-72-B3-40-F9-BE",
        "source": "hotspot Café Norte",
    },
    "subscriber.create": {
        "email_address": "jane.doe@example.com",
        "status": "subscribed",
        "merge_fields": {"FNAME": "Jane Doe", "CITY": "Buenos Aires"},
    },
    "transaction.paid.create": {
        "reference": "8412377",
        "amount": 4.99,
        "currency": "USD",
        "date": "2022-08-27 13:41:09",
        "customer": "Jane Doe",
    },
    "transaction.voucher.create": {"text": "Voucher used at Café Norte by BE-72-B3-40-F9-BE"},
    "transaction.mac.create": "mac=BE-72-B3-40-F9-BE&package=3&answer=A%20friend",
    "transaction.social.create": {"content": "New facebook login: jane.doe (312 followers)"},
}


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    sandbox = SandboxPool(1)
    yield sandbox
    sandbox.close()


def template(body: str, content_type: str = "text/plain") -> Template:
    return compile_template({"body": body, "content_type": content_type})


def rendered(pool: SandboxPool, body: str, content_type: str = "text/plain") -> str:
    return render(template(body, content_type), SAMPLES["customer.create"], pool=pool).decode()


def failure(pool: SandboxPool, body: str, content_type: str = "text/plain") -> RenderError:
    with pytest.raises(RenderError) as caught:
        rendered(pool, body, content_type)
    return caught.value


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_each_hotspot_types_sample_renders_through_its_example(
    pool: SandboxPool, event_type: str
) -> None:
    content_type, body = EXAMPLES[event_type]
    example = compile_template({"body": body, "content_type": content_type})
    check_template(example, {event_type: SAMPLES[event_type]}, pool=pool)
    output = render(example, SAMPLES[event_type], pool=pool).decode()
    expected = EXPECTED[event_type]
    assert (json.loads(output) if example.is_json else output) == expected


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_data_tojson_is_the_payload_byte_for_byte(pool: SandboxPool, event_type: str) -> None:
    body = render(template("{{ data|tojson }}", "application/json"), SAMPLES[event_type], pool=pool)
    assert body == serialize(EVENT_TYPES[event_type].sample)


def test_the_context_is_event_data_and_location(pool: SandboxPool) -> None:
    context = RenderContext(
        event_id="evt_1",
        event_type="customer.create",
        location_id="loc-7",
        created_at=datetime(2026, 12, 7, 23, 5, 0, 123456, tzinfo=UTC),
        data={"email": "a@b.c", "name": None},
        location_name="Café Norte",
    )
    body = "{{ event.id }}|{{ event.type }}|{{ event.location_id }}|{{ event.created_at }}|"
    body += (
        "{{ location.id }}|{{ location.name }}|{{ data.email }}|{{ data.name }}|{{ data|length }}"
    )
    assert render(template(body), context, pool=pool).decode() == (
        "evt_1|customer.create|loc-7|2026-12-07T23:05:00.123456+00:00|loc-7|Café Norte|a@b.c||2"
    )


def test_the_payload_may_come_as_its_stored_bytes(pool: SandboxPool) -> None:
    sample = SAMPLES["transaction.paid.create"]
    stored = RenderContext(
        sample.event_id,
        sample.event_type,
        sample.location_id,
        sample.created_at,
        serialize(EVENT_TYPES["transaction.paid.create"].sample),
        sample.location_name,
    )
    content_type, body = EXAMPLES["transaction.paid.create"]
    example = compile_template({"body": body, "content_type": content_type})
    assert render(example, stored, pool=pool) == render(example, sample, pool=pool)


def test_the_context_holds_nothing_else(pool: SandboxPool) -> None:
    names = ["event", "data", "location", "range", "dict", "namespace", "cycler", "joiner"]
    names += ["config", "request", "os", "lipsum", "url_for", "g", "session", "environment"]
    defined = {name: rendered(pool, f"{{{{ {name} is defined }}}}") for name in names}
    assert [name for name, answer in defined.items() if answer == "True"] == names[:8]


def test_tojson_is_compact_unicode_and_safe_inside_json(pool: SandboxPool) -> None:
    value = {"quote": 'say "hi"', "line": "a\u2028b", "é": ["ü", 1, None, True, 2.5]}
    context = RenderContext("e", "t", "l", "2022-01-01", {"value": value}, "n")
    json_template = template('{"v": {{ data.value|tojson }}}', "application/json")
    out = render(json_template, context, pool=pool).decode()
    assert out == '{"v": {"quote":"say \\"hi\\"","line":"a\\u2028b","é":["ü",1,null,true,2.5]}}'
    assert json.loads(out)["v"] == value
    assert failure(pool, "{{ data.nope|tojson }}").reason == "'dict object' has no attribute 'nope'"
    assert (
        "tojson: a Namespace is not a JSON value"
        in failure(pool, "{{ namespace()|tojson }}").reason
    )


def test_null_prints_as_nothing_and_a_missing_name_is_an_error(pool: SandboxPool) -> None:
    assert rendered(pool, "[{{ data.name }}]") == "[]"
    error = failure(pool, "line one\n{{ data.emial }}")
    assert error.line == 2
    assert "'dict object' has no attribute 'emial'" in error.reason
    assert str(error) == f"line 2: {error.reason}"
    assert rendered(pool, "[{{ data.get('emial') }}]") == "[]"


def test_null_joins_as_nothing_too(pool: SandboxPool) -> None:
    assert rendered(pool, "{{ 'Hi ' ~ data.name ~ '!' }}") == "Hi !"
    assert rendered(pool, "{{ ('Hi ' ~ data.name)|tojson }}") == '"Hi "'
    assert rendered(pool, "{{ data.id ~ 1 ~ true }}") == "592435831True"


def test_a_json_content_type_must_render_valid_json(pool: SandboxPool) -> None:
    bad = '{"name": "{{ data.email }}", }'
    error = failure(pool, bad, "application/json")
    assert "not valid JSON" in error.reason
    assert "|tojson" in error.reason
    assert failure(pool, '{"n": NaN}', "application/vnd.api+json").reason.startswith(
        "the body is not valid JSON"
    )
    assert rendered(pool, bad, "text/plain") == '{"name": "myname@gmail.com", }'


def test_check_names_each_type_that_fails_and_the_line(pool: SandboxPool) -> None:
    customer_only = template('{"mac":\n {{ data.UserName|tojson }}}', "application/json")
    check_template(customer_only, {"customer.create": SAMPLES["customer.create"]}, pool=pool)
    with pytest.raises(InvalidInput) as caught:
        check_template(customer_only, SAMPLES, pool=pool)
    failing = [d["message"] for d in caught.value.details]
    assert {d["field"] for d in caught.value.details} == {"template.body"}
    assert len(failing) == 4  # the four transaction types have user_name, not UserName
    assert failing[0] == (
        "transaction.paid.create: line 2: 'dict object' has no attribute 'UserName'"
    )
    assert caught.value.message.startswith("template.body does not render for transaction.paid")


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("{{ data }}", "template", "must be an object"),
        ({"body": "x", "headers": {}}, "template.headers", "unknown field"),
        ({"body": ""}, "template.body", "non-empty string"),
        ({"body": 5}, "template.body", "non-empty string"),
        ({"body": "x" * (MAX_SOURCE + 1)}, "template.body", "at most 64 KiB"),
        ({"body": "a\x00b"}, "template.body", "NUL"),
        ({"body": "x", "content_type": "json"}, "template.content_type", "media type"),
        ({"body": "x", "content_type": "text/plain\r\nX-Evil: 1"}, "template.content_type",
         "media"),
        ({"body": "x", "content_type": "text/plain; charset=latin-1"}, "template.content_type",
         "utf-8"),
        ({"body": "a\n{{ data.email "}, "template.body", "line 2: unexpected end of template"),
        ({"body": "{% for x in data %}"}, "template.body", "line 1:"),
        ({"body": "\n\n{% include 'x.html' %}"}, "template.body", "line 3: {% include %}"),
        ({"body": "{% import 'm' as m %}"}, "template.body", "{% import %} is not available"),
        ({"body": "{% extends 'base' %}"}, "template.body", "{% extends %} is not available"),
        ({"body": "{{" + "(" * 3000 + "1" + ")" * 3000 + "}}"}, "template.body", "nested"),
        ({"body": "{{ " + "a + " * 16000 + "a }}"}, "template.body", "nested too deeply"),
        ({"body": "{{ a" + "|e" * 3000 + " }}"}, "template.body", "nested too deeply"),
    ],
)  # fmt: skip
def test_a_wrong_template_is_refused_naming_the_field(value: Any, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_template(value)
    assert caught.value.details[0]["field"] == field
    assert words in caught.value.details[0]["message"]


def test_a_template_defaults_to_json_and_keeps_its_parameters() -> None:
    assert compile_template({"body": "{}"}).content_type == "application/json"
    assert compile_template({"body": "{}"}).is_json
    plain = compile_template({"body": "x", "content_type": "text/plain; charset=UTF-8"})
    assert not plain.is_json
    assert plain.to_json() == {"body": "x", "content_type": "text/plain; charset=UTF-8"}
    assert compile_template({"body": "{}", "content_type": "application/cloudevents+json"}).is_json


NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
HOSTILE = [
    ("{{ ''.__class__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "is unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__'"),
    ("{{ joiner.__init__.__globals__.os }}", "is unsafe"),
    ("{{ namespace.__init__ }}", "is unsafe"),
    ("{{ data.__class__.__base__ }}", "is unsafe"),
    ("{{ data.update({'x': 1}) }}", "is unsafe"),
    ("{{ event.pop('id') }}", "is unsafe"),
    ("{{ self.__init__.__globals__ }}", "is unsafe"),
    ("{{ range.__globals__ }}", "is unsafe"),
    ("{{ '{0.__class__.__mro__}'.format(data) }}", "is unsafe"),
    ("{{ data|attr('__class__') }}", "is unsafe"),
    ("{{ [1, 2]|sort(attribute='__class__') }}", "is unsafe"),
    ("{% for k in data %}{{ loop.__class__ }}{% endfor %}", "is unsafe"),
    ("{{ cycler('a').next.__self__ }}", "is unsafe"),
    ("{{ self._TemplateReference__context }}", "is unsafe"),
    ("{{ lipsum() }}", "'lipsum' is undefined"),
    ("{{ range(10**9) }}", "Range too big"),
    ("{{ range(10**9)|list }}", "Range too big"),
    ("{{ 'x' * 10**9 }}", "the result would exceed 262144 items"),
    ("{{ [0] * 10**9 }}", "the result would exceed"),
    ("{{ 10 ** (10 ** 10) }}", "too large"),
    ("{{ 2 ** 100000 }}", "too large"),
    (
        "{% set ns = namespace(x=2**32000) %}{% for i in range(40) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "too large",
    ),
    (NESTED_LOOPS, "took more than 50 ms of CPU"),
    (
        "{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% for k in r %}"
        "{{ '' }}{% endfor %}{% endfor %}{% endfor %}",
        "took more than 50 ms of CPU",
    ),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursed too deeply"),
    (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "took more than 50 ms",
    ),
    ("{{ '%0999999999d' % 1 }}", "used more than 256 MiB of memory"),
    ("{{ '{:>999999999}'.format(1) }}", "used more than 256 MiB of memory"),
    ("{{ 'x'|center(999999999) }}", "memory|took more than 50 ms"),
    ("{{ 'x'|indent(999999999, true) }}", "memory|took more than 50 ms"),
    (
        "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(60) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "the result would exceed",
    ),
    ("{% for i in range(100000) %}xxxxxxxxxxxx{% endfor %}", "larger than 256 KiB"),
    ("{{ 'x' * 200000 }}{{ 'y' * 200000 }}", "larger than 256 KiB"),
    ("{{ ('x' * 200000) + ('y' * 200000) }}", "the result would exceed"),
]


@pytest.mark.parametrize(("body", "words"), HOSTILE, ids=[body for body, _ in HOSTILE])
def test_a_hostile_template_is_refused_or_cut_off_and_the_sandbox_goes_on(
    pool: SandboxPool, body: str, words: str
) -> None:
    assert re.search(words, failure(pool, body).reason)
    assert rendered(pool, "still {{ data.country_code }}") == "still AR"


def test_every_hostile_template_fails_its_check_at_create(pool: SandboxPool) -> None:
    one = {"transaction.social.create": SAMPLES["transaction.social.create"]}
    for body, _ in HOSTILE:
        with pytest.raises(InvalidInput, match=r"^template\.body does not render for transaction"):
            check_template(template(body), one, pool=pool)


def test_a_body_of_exactly_the_bound_is_sent_and_one_byte_more_is_not(pool: SandboxPool) -> None:
    assert len(rendered(pool, f"{{{{ 'x' * {MAX_OUTPUT} }}}}")) == MAX_OUTPUT
    assert "larger than 256 KiB" in failure(pool, f"{{{{ 'x' * {MAX_OUTPUT} }}}}é").reason


def test_a_large_template_compiles_on_its_own_budget_then_renders_on_the_render_budget(
    pool: SandboxPool,
) -> None:
    rows = []
    while sum(map(len, rows)) < MAX_SOURCE - 200:
        name = ["email", "name", "city", "country_code", "phone", "UserName"][len(rows) % 6]
        rows.append(f"<tr><td>{name}</td><td>{{{{ data.{name}|default('-') }}}}</td></tr>\n")
    large = template("".join(rows), "text/html")
    body = render(large, SAMPLES["customer.create"], pool=pool)  # compiles: over 50 ms here
    assert body.count(b"<tr>") == len(rows)
    assert b"<td>myname@gmail.com</td>" in body


def test_the_sandbox_process_has_no_environment_files_or_children_to_spare() -> None:
    process = SandboxProcess()
    try:
        assert process.render("k", "{{ 'a b'|wordwrap(1) }}|{{ [1]|pprint }}", {}, False) == (
            b"a\nb|[1]"  # filters that import on first use, after the limits
        )
        assert process._process is not None
        pid = process._process.pid
        with open(f"/proc/{pid}/environ", "rb") as environ:
            assert environ.read() == b""  # none of the service's settings or secrets
        with open(f"/proc/{pid}/limits") as limits:
            limit = {line[:26].strip(): line[26:].split() for line in limits.readlines()[1:]}
        assert limit["Max file size"][:2] == ["0", "0"]
        assert limit["Max core file size"][:2] == ["0", "0"]
        assert limit["Max processes"][:2] == ["0", "0"]
        assert int(limit["Max open files"][0]) <= len(os.listdir(f"/proc/{pid}/fd"))
        assert int(limit["Max address space"][0]) < 2 * 1024**3
    finally:
        process.close()


def test_every_filter_works_in_a_sandbox_that_may_open_no_file(pool: SandboxPool) -> None:
    from hotspot_webhooks.integrations.sandbox import WebhookEnvironment

    broken = []
    for name in sorted(WebhookEnvironment().filters):
        for value in ('"a b é\\n"', "[3, 1, 2]", '{"b": 1, "a": 2}', "12.5"):
            try:
                rendered(pool, f"{{{{ {value}|{name} }}}}")
            except RenderError as exc:
                if "Errno" in exc.reason or ".py'" in exc.reason or "open" in exc.reason:
                    broken.append(f"{name}: {exc.reason}")
    assert broken == []


def test_the_sandbox_forgets_and_relearns_templates(pool: SandboxPool) -> None:
    first = template("first {{ data.id }}")
    assert render(first, SAMPLES["customer.create"], pool=pool) == b"first 59243583"
    for number in range(140):  # more than a sandbox process keeps compiled
        render(template(f"{number}"), SAMPLES["customer.create"], pool=pool)
    assert render(first, SAMPLES["customer.create"], pool=pool) == b"first 59243583"


# What a sandbox process writes when it is ready: "R" and its CPU time so far.
_HELLO = "import os, struct, time; os.write(1, b'R' + struct.pack('>d', time.process_time()))"


def test_a_sandbox_process_that_died_between_renders_is_replaced_unnoticed() -> None:
    process = SandboxProcess()
    try:
        assert process.render("k", "warm", {}, False) == b"warm"
        child = process._process
        assert child is not None
        child.kill()
        child.wait()
        assert process.render("k", "again", {}, False) == b"again"
        assert process._process is not child
    finally:
        process.close()


def test_a_sandbox_process_killed_mid_render_fails_that_render(tmp_path: Path) -> None:
    reading = tmp_path / "reading"
    hanger = f"{_HELLO}; os.read(0, 65536); open({str(reading)!r}, 'w')"
    process = SandboxProcess([sys.executable, "-c", hanger + "; time.sleep(60)"])
    outcome: list[BaseException] = []

    def render_in_thread() -> None:
        try:
            process.render("k", "x", {}, False)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=render_in_thread)
    thread.start()
    try:
        for _ in range(1000):  # up to 10 s for the stand-in to have read the request
            if reading.exists():
                break
            time.sleep(0.01)
        assert reading.exists(), "the stand-in never read its request"
        assert process._process is not None
        os.kill(process._process.pid, signal.SIGKILL)
        thread.join(10)
        assert not thread.is_alive(), "the render did not return within 10 s of the kill"
        assert len(outcome) == 1
        assert isinstance(outcome[0], RenderError)
        assert "ended during the render (status -9)" in str(outcome[0])
        assert process._process is None
    finally:
        process.close()
        thread.join(10)


# Stand-ins for a sandbox process, for the parent's own bound: one that spins in a loop the
# child's timer does not stop, one that sleeps (a starved child) and then answers.
_SPINNER = f"{_HELLO}; os.read(0, 65536)\nwhile True: pass"
_SLEEPER = textwrap.dedent(
    """
    import os, struct, time
    os.write(1, b'R' + struct.pack('>d', 0.0)); os.read(0, 65536); time.sleep(1.0)
    os.write(1, (12).to_bytes(4, 'big') + struct.pack('>d', 0.0) + b'Oyes')
    """
)


def test_a_child_that_spins_past_its_budget_is_killed() -> None:
    process = SandboxProcess([sys.executable, "-c", _SPINNER], late=0.2)
    try:
        with pytest.raises(RenderError, match="took more than 50 ms of CPU \\(stopped\\)"):
            process.render("k", "x", {}, False)
        assert process._process is None  # killed; the next render starts another
    finally:
        process.close()


def test_a_child_that_is_slow_without_spending_cpu_is_waited_for() -> None:
    process = SandboxProcess([sys.executable, "-c", _SLEEPER], late=0.2)
    try:
        assert process.render("k", "x", {}, False) == b"yes"
    finally:
        process.close()


def test_a_child_that_cannot_start_is_unavailable_not_a_render_error() -> None:
    process = SandboxProcess([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(SandboxUnavailable, match="did not start"):
        process.render("k", "x", {}, False)


def test_a_pool_lends_each_process_to_one_thread_at_a_time() -> None:
    pool = SandboxPool(2)
    bodies: list[bytes] = []
    try:

        def render_many(number: int) -> None:
            mine = template(f"{number}:{{{{ data.id }}}}")
            for _ in range(50):
                bodies.append(render(mine, SAMPLES["customer.create"], pool=pool))

        threads = [threading.Thread(target=render_many, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(thread.is_alive() for thread in threads), "renders still running at 60 s"
    finally:
        pool.close()
    assert sorted(set(bodies)) == [f"{n}:59243583".encode() for n in range(4)]
    assert len(bodies) == 200


def test_the_module_render_uses_a_shared_sandbox() -> None:
    assert (
        render(template("{{ location.name }}"), SAMPLES["customer.create"]) == "Café Norte".encode()
    )


async def test_the_renderer_renders_off_the_event_loop_and_checks() -> None:
    renderer = TemplateRenderer(processes=2)
    try:
        examples = {
            name: compile_template({"body": body, "content_type": kind})
            for name, (kind, body) in EXAMPLES.items()
        }
        bodies = await asyncio.gather(
            *(renderer.render(examples[name], SAMPLES[name]) for name in sorted(EXAMPLES) * 3)
        )
        assert len(bodies) == 18
        assert all(body for body in bodies)
        await renderer.check(
            examples["customer.create"], {"customer.create": SAMPLES["customer.create"]}
        )
        with pytest.raises(InvalidInput, match=r"transaction\.paid\.create"):
            await renderer.check(examples["customer.create"], SAMPLES, field="template")
        with pytest.raises(RenderError, match="took more than 50 ms"):
            await renderer.render(template(NESTED_LOOPS), SAMPLES["customer.create"])
    finally:
        renderer.close()
    with pytest.raises(SandboxUnavailable, match="closed"):
        await renderer.render(template("x"), SAMPLES["customer.create"])


async def test_an_async_render_past_its_budget_is_stopped_without_blocking_the_loop() -> None:
    process = SandboxProcess([sys.executable, "-c", _SPINNER], late=0.2)
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(ticking())
    try:
        with pytest.raises(RenderError, match=r"took more than 50 ms of CPU \(stopped\)"):
            await process.render_async("k", "x", {}, False)
        assert ticks > 5  # the loop went on while the child spun
        assert process._process is None
    finally:
        ticker.cancel()
        process.close()


async def test_an_async_render_waits_for_a_starved_child() -> None:
    process = SandboxProcess([sys.executable, "-c", _SLEEPER], late=0.2)
    try:
        assert await process.render_async("k", "x", {}, False) == b"yes"
    finally:
        process.close()


async def test_a_cancelled_render_leaves_no_reply_behind_for_the_next() -> None:
    renderer = TemplateRenderer(processes=1)
    slow = template("{% for i in range(30000) %}{% endfor %}late")
    try:
        task = asyncio.create_task(renderer.render(slow, SAMPLES["customer.create"]))
        await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        quick = template("{{ data.id }}")
        assert await renderer.render(quick, SAMPLES["customer.create"]) == b"59243583"
    finally:
        renderer.close()


async def test_closing_the_renderer_ends_a_render_under_way() -> None:
    renderer = TemplateRenderer(processes=1)
    await renderer.render(template("warm"), SAMPLES["customer.create"])
    task = asyncio.create_task(renderer.render(template(NESTED_LOOPS), SAMPLES["customer.create"]))
    await asyncio.sleep(0.01)
    renderer.close()
    with pytest.raises((SandboxUnavailable, RenderError)):
        await task


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(blacklist_categories=["Cs"]), max_size=5), inner)
    ),
    max_leaves=10,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values)
def test_tojson_of_any_payload_value_is_valid_json_of_that_value(
    pool: SandboxPool, value: object
) -> None:
    context = RenderContext("e", "t", "l", "2022-01-01", {"value": value}, "n")
    body = render(
        template('{"v": {{ data.value|tojson }}}', "application/json"), context, pool=pool
    )
    assert json.loads(body) == {"v": value}
