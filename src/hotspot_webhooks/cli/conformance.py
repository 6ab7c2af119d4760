"""``check-endpoint``: the receiver conformance checks (``conformance.py``) as a table, with
advice for each failure, or as JSON for CI."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..conformance import BURST_CONCURRENCY, MAX_BURST, Check, Level, Report
from ..conformance import check_endpoint as run_checks
from ..errors import InvalidInput
from ..terminal import json_text, line
from .common import Json, err, fail, out, run, settings


def check_endpoint(
    url: Annotated[str, typer.Argument(help="The receiver's callback URL.")],
    api_key: Annotated[
        str,
        typer.Option("--api-key", help="The webhook's API key.", envvar="HOTSPOT_WEBHOOKS_API_KEY"),
    ],
    event: Annotated[
        str | None,
        typer.Option("--event", help="Check only this built-in event type.", show_default=False),
    ] = None,
    as_json: Json = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.01,
            max=300,
            help="Seconds a request may take (default: the TIMEOUT setting, 15).",
            show_default=False,
        ),
    ] = None,
    burst: Annotated[
        int,
        typer.Option(
            "--burst",
            metavar="N",
            min=0,
            max=MAX_BURST,
            help=f"Signed requests in the burst, {BURST_CONCURRENCY} at once (0: none).",
        ),
    ] = 50,
    allow_private_targets: Annotated[
        bool,
        typer.Option(
            "--allow-private-targets",
            help="Allow a receiver on loopback or a private network (local testing).",
        ),
    ] = False,
) -> None:
    """Check a receiver before it gets deliveries: correctly signed samples of each event
    type must get 200, forged and unsigned requests must be refused, a redelivery accepted,
    a burst answered within the timeout; a stale timestamp should be refused.

    Exits 0 when every must passed (warnings allowed); 1 when a must failed or the receiver did
    not answer the first request; 2 when nothing was sent: an option is wrong, or the URL is
    refused by the SSRF guard, as callback URLs are (allow loopback and private receivers with
    --allow-private-targets or HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true).
    """
    config = settings(
        timeout=timeout, allow_private_targets=True if allow_private_targets else None
    )

    async def work() -> Report:
        try:
            return await run_checks(url, api_key, config, event_type=event, burst=burst)
        except InvalidInput as exc:
            private = "ALLOW_PRIVATE_TARGETS" in exc.message  # the SSRF guard's refusal
            fail(f"{exc.message}; or pass --allow-private-targets" if private else exc.message, 2)

    report = run(work)
    if report.unreachable:
        err.print(
            line(
                ("error:", "red"),
                " the receiver did not answer the first request: ",
                report.unreachable,
            ),
            soft_wrap=True,
        )
    if as_json:
        print(json_text(report.as_json()))
    else:
        _show(report)
    if not report.passed:
        raise typer.Exit(1)


_RESULTS = {
    (True, Level.MUST): ("pass", "green"),
    (True, Level.SHOULD): ("pass", "green"),
    (False, Level.MUST): ("FAIL", "bold red"),
    (False, Level.SHOULD): ("warn", "yellow"),
    (None, Level.MUST): ("skipped", "dim"),
    (None, Level.SHOULD): ("skipped", "dim"),
}


def _show(report: Report) -> None:
    table = Table(title=line("check-endpoint ", report.url), title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("must/should", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(
            line(check.name),
            line(str(check.level)),
            line(_RESULTS[check.passed, check.level]),
            line(_detail(check)),
        )
    out.print(table)
    failures = [c for c in report.checks if c.passed is False and c.advice]
    if failures:
        out.print()
        out.print(line(("Advice", "bold")))
        for check in failures:
            marker = ("must", "red") if check.level is Level.MUST else ("should", "yellow")
            out.print(line("- ", marker, f" {check.name}: {check.advice}"), soft_wrap=True)
    if report.forgery_accepted:
        out.print()
        out.print(
            line(
                (
                    "This receiver accepts forged deliveries: anyone who knows its URL can "
                    "send it events it will take for ours.",
                    "bold red",
                )
            )
        )
    must, should = len(report.failed(Level.MUST)), len(report.failed(Level.SHOULD))
    verdict = ("conforms", "green") if report.passed else ("does not conform", "bold red")
    out.print()
    out.print(
        line(
            verdict,
            f": {must} must failed, {should} warning(s), "
            f"{sum(c.passed is True for c in report.checks)} of {len(report.checks)} passed",
        )
    )


def _detail(check: Check) -> str:
    latency = f" · {check.latency_ms} ms" if check.latency_ms is not None else ""
    return f"{check.detail}{latency}" if not check.name.startswith("burst") else check.detail
