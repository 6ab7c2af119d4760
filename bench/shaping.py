"""What a filter and a template cost per delivery (SPEC §9, issue 27).

    .venv/bin/python bench/shaping.py [--filters 200000] [--renders 3000] [--rounds 5]

* ``Filter.matches``: a typical three-clause filter (``$in``, a bare value, a numeric ``$gte``
  on a string) against the ``transaction.paid.create`` sample, matching and failing at its
  first clause; beside it, when ``mongoquery`` is importable, the same query through it.
* A typical template (a JSON body of five fields through ``tojson``): rendered in this process
  by the sandboxed environment alone (no bound on time or memory: the floor), through the
  sandbox process synchronously (``render``), and through ``TemplateRenderer`` (two processes,
  waiting on the event loop: awaited one at a time, then 32 in flight), the payload given as
  its stored bytes, as the dispatcher has it. For the sandbox, the
  CPU per render of this process and of the sandbox processes (from ``/proc``).

Prints µs per call, each the median of the rounds (CPU figures are steadier than wall-clock
ones on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(os.environ.get("HW_BENCH_SRC") or ROOT / "src")))

from hotspot_webhooks.catalog import EVENT_TYPES, serialize  # noqa: E402
from hotspot_webhooks.integrations.filters import compile_filter  # noqa: E402
from hotspot_webhooks.integrations.sandbox import WebhookEnvironment, render_compiled  # noqa: E402
from hotspot_webhooks.integrations.sandbox_pool import SandboxPool  # noqa: E402
from hotspot_webhooks.integrations.templates import (  # noqa: E402
    TemplateRenderer,
    compile_template,
    render,
    sample_contexts,
)

TICK = 1 / os.sysconf("SC_CLK_TCK")
FILTER = {"country_code": {"$in": ["AR", "BR"]}, "newsletter": "1", "amount": {"$gte": 1}}
TEMPLATE = """{"reference": {{ data.id|tojson }}, "amount": {{ data.amount|float|tojson }},
 "currency": {{ data.currency|tojson }}, "date": {{ data.action_date_gmt|tojson }},
 "text": {{ ("Paid at " ~ location.name ~ " by " ~ data.email)|tojson }}}"""
PAID = "transaction.paid.create"
IN_FLIGHT = 32


def per_call(function: Callable[[], object], calls: int) -> float:
    """µs of wall clock per call."""
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e6


def children_cpu(processes: list[Any]) -> float:
    """CPU seconds the live sandbox processes have spent so far."""
    total = 0.0
    for process in processes:
        child = process._process
        if child is not None:
            with open(f"/proc/{child.pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) * TICK
    return total


def measure_filters(calls: int) -> dict[str, float]:
    sample = dict(EVENT_TYPES[PAID].sample)
    compiled = compile_filter(FILTER)
    failing = {**sample, "country_code": "CL"}
    assert compiled.matches(sample)
    assert not compiled.matches(failing)
    figures = {
        "filter (matches)": per_call(lambda: compiled.matches(sample), calls),
        "filter (fails at once)": per_call(lambda: compiled.matches(failing), calls),
    }
    try:
        from mongoquery import Query  # type: ignore[import-not-found]
    except ImportError:
        return figures
    query = Query(FILTER)
    figures["mongoquery, same query"] = per_call(lambda: query.match(sample), calls)
    return figures


def measure_templates(renders: int) -> dict[str, float]:
    template = compile_template({"body": TEMPLATE})
    sample = sample_contexts([EVENT_TYPES[PAID]], location_name="Café Norte")[PAID]
    # as the dispatcher has it: the payload's stored bytes
    context = dataclasses.replace(sample, data=serialize(EVENT_TYPES[PAID].sample))
    environment = WebhookEnvironment()
    compiled = environment.from_string(TEMPLATE)
    variables = sample.variables()
    figures = {
        "template in this process (no bounds)": per_call(
            lambda: render_compiled(compiled, variables, is_json=True), renders
        )
    }
    pool = SandboxPool(1)
    try:
        render(template, context, pool=pool)  # starts the child, compiles the template
        cpu_before, child_before = time.process_time(), children_cpu(pool._all)
        figures["template, sandbox, sync (wall)"] = per_call(
            lambda: render(template, context, pool=pool), renders
        )
        figures["  CPU here"] = (time.process_time() - cpu_before) / renders * 1e6
        figures["  CPU in the sandbox"] = (children_cpu(pool._all) - child_before) / renders * 1e6
    finally:
        pool.close()
    figures.update(asyncio.run(measure_renderer(template, context, renders)))
    return figures


async def measure_renderer(template: Any, context: Any, renders: int) -> dict[str, float]:
    renderer = TemplateRenderer(processes=2)
    try:
        await asyncio.gather(*(renderer.render(template, context) for _ in range(4)))
        cpu_before = time.process_time()
        child_before = children_cpu(renderer._processes)
        started = time.perf_counter()
        for _ in range(renders):
            await renderer.render(template, context)
        figures = {
            "template, TemplateRenderer, awaited (wall)": (time.perf_counter() - started)
            / renders
            * 1e6,
            "  CPU here ": (time.process_time() - cpu_before) / renders * 1e6,
            "  CPU in the sandbox ": (children_cpu(renderer._processes) - child_before)
            / renders
            * 1e6,
        }
        batches = renders // IN_FLIGHT
        started = time.perf_counter()
        for _ in range(batches):
            await asyncio.gather(*(renderer.render(template, context) for _ in range(IN_FLIGHT)))
        name = f"template, TemplateRenderer x2, {IN_FLIGHT} at once (wall)"
        figures[name] = (time.perf_counter() - started) / (batches * IN_FLIGHT) * 1e6
        return figures
    finally:
        renderer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filters", type=int, default=200_000, help="matches per round")
    parser.add_argument("--renders", type=int, default=3_000, help="renders per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds: list[dict[str, float]] = []
    for number in range(1, args.rounds + 1):
        figures = {**measure_filters(args.filters), **measure_templates(args.renders)}
        rounds.append(figures)
        print(f"round {number}: " + " · ".join(f"{k.strip()} {v:.1f}" for k, v in figures.items()))
    print(f"µs per call, medians of {args.rounds} rounds:")
    for name in rounds[0]:
        print(f"  {name:52s} {statistics.median(r[name] for r in rounds):8.2f}")


if __name__ == "__main__":
    main()
