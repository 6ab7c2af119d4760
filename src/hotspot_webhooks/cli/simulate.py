"""``simulate``: realistic hotspot traffic (``traffic.py``) emitted at a steady rate, over REST
to a running server or straight into the database, with a progress bar and a summary.

The rate is held by a schedule (event k falls due at start + k / rate; what is due is sent in
batches), not by sleeping after each send, so slow answers do not make it drift: the run falls
behind while the server is slow and catches up when it answers again, and the summary says
what rate was achieved.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..client import RemoteService
from ..config import parse_duration
from ..errors import Conflict, Forbidden, HotspotWebhooksError, NotFound
from ..ids import new_id
from ..models import EmitResult
from ..service import EmitRequest, Service
from ..store.database import display_url
from ..terminal import line
from ..traffic import DEFAULT_WEIGHTS, SimulatedEvent, Traffic, weights_for
from .backend import Backend
from .common import Db, Json, err, fail, out, run, settings
from .output import show

MAX_IN_FLIGHT = 8  # requests (or database batches) waiting for their answer at once
TICK = 0.1  # seconds: what falls due within a tick goes out together
DEFAULT_OPERATOR = "simulator"


class SimulationError(HotspotWebhooksError):
    """What stops a simulation or refuses a batch, said in one line: the server's answer, or
    a location or operator that is not as needed."""


# ---- where events go ----------------------------------------------------------------------


class Emitter:
    """Where the simulated events go: the verbs of a running server (REST) or of the
    database (acting as the admin), the same ``Backend`` every resource command uses."""

    def __init__(self, backend: Backend, target: str) -> None:
        self.backend = backend
        self.target = target

    async def prepare(
        self, create: Sequence[str], existing: Sequence[str], operator: str | None
    ) -> str:
        """Make sure the locations are there (creating ``create``, for ``operator`` when the
        caller is the admin); return the operator's name for the payloads."""
        try:
            operators = await self.backend.operators.get_all()
        except Forbidden:  # an operator's token: its own locations
            if operator is not None:
                raise SimulationError(
                    "--operator is for the admin's token; an operator's token simulates at "
                    "that operator's own locations: leave --operator out"
                ) from None
            owner = None
        else:  # the admin: locations go to --operator, made if missing
            name = operator or DEFAULT_OPERATOR
            found = [o for o in operators if name in (o.id, o.name)]
            owner = found[0] if found else await self.backend.operators.create(name)
        label = "" if owner is None else owner.name
        for location_id in [*create, *existing]:
            try:
                location = await self.backend.locations.get(location_id)
            except NotFound:
                if location_id not in create:
                    raise SimulationError(f"--location {location_id}: no such location") from None
                try:
                    location = await self.backend.locations.create(
                        location_id,
                        _location_name(location_id),
                        None if owner is None else owner.id,
                    )
                except Conflict:
                    raise SimulationError(
                        f"location {location_id} exists already, and not for this token (a "
                        "location id is one for the whole server): simulate at your own with "
                        "--location ID, or with the admin's token and --operator OWNER"
                    ) from None
            if owner is not None and location_id in create and location.operator_id != owner.id:
                raise SimulationError(
                    f"location {location_id} belongs to operator {location.operator_id}, not "
                    f"{owner.name}: name it with --operator, or pick others with --location"
                )
            label = label or location.operator_id
        return label

    async def emit(self, events: Sequence[SimulatedEvent]) -> list[EmitResult]:
        requests = [EmitRequest(e.type, e.location_id, e.data, e.id) for e in events]
        return await self.backend.events.emit_many(requests)


def _location_name(location_id: str) -> str:
    return f"Simulated hotspot {location_id}"


# ---- what happened ------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of a run, kept as answers come back."""

    scheduled: int = 0
    emitted: int = 0
    duplicates: int = 0
    deliveries: int = 0
    failed: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def answered(
        self, events: Sequence[SimulatedEvent], results: Sequence[EmitResult], seconds: float
    ) -> None:
        self.latencies.append(seconds)
        for event, result in zip(events, results, strict=True):
            self.emitted += 1
            self.by_type[event.type] += 1
            self.deliveries += result.deliveries
            self.duplicates += result.duplicate

    def refused(self, events: Sequence[SimulatedEvent], message: str, seconds: float) -> None:
        self.latencies.append(seconds)
        self.failed += len(events)
        self.errors[message] += 1

    def summary(self, elapsed: float, rate: float, **about: Any) -> dict[str, Any]:
        latencies = sorted(self.latencies)

        def percentile(share: float) -> float | None:
            if not latencies:
                return None
            return round(latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000, 1)

        return {
            **about,
            "seconds": round(elapsed, 2),
            "events": self.emitted,
            "by_type": dict(sorted(self.by_type.items())),
            "duplicates": self.duplicates,
            "deliveries": self.deliveries,
            "failed_events": self.failed,
            "errors": [
                {"message": message, "requests": count} for message, count in self.errors.items()
            ],
            "rate": {
                "target": rate,
                "achieved": round(self.emitted / elapsed, 2) if elapsed > 0 else 0.0,
            },
            "latency_ms": {
                "requests": len(latencies),
                "p50": percentile(0.5),
                "p95": percentile(0.95),
                "max": round(latencies[-1] * 1000, 1) if latencies else None,
            },
        }


# ---- the schedule -------------------------------------------------------------------------


@dataclass
class Plan:
    rate: float
    total: int
    batch: int


class Simulation:
    """One run: ``plan.total`` events, event k falling due at start + k / rate. What is due
    goes out in batches of at most ``plan.batch``, with at most ``MAX_IN_FLIGHT`` unanswered;
    ``interrupt`` stops the schedule (and, the second time, the wait for answers)."""

    def __init__(self, traffic: Traffic, emitter: Emitter, plan: Plan) -> None:
        self.traffic = traffic
        self.emitter = emitter
        self.plan = plan
        self.tally = Tally()
        self.interrupted = False
        self._stop = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()

    def interrupt(self) -> None:
        if self.interrupted:
            for task in list(self._sending):
                task.cancel()
        self.interrupted = True
        self._stop.set()

    async def run(self, progress: Callable[[Tally, float], None]) -> float:
        """Emit the plan; return the seconds it took."""
        loop = asyncio.get_running_loop()
        plan, tally = self.plan, self.tally
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        started = loop.time()

        async def send(events: list[SimulatedEvent]) -> None:
            began = loop.time()
            try:
                results = await self.emitter.emit(events)
            except HotspotWebhooksError as exc:
                tally.refused(events, exc.message, loop.time() - began)
            except asyncio.CancelledError:
                tally.refused(events, "interrupted before the answer", loop.time() - began)
            except Exception as exc:  # counted and shown like the others, never lost
                message = f"unexpected {type(exc).__name__}: {exc}"
                tally.refused(events, message, loop.time() - began)
            else:
                tally.answered(events, results, loop.time() - began)
            finally:
                slots.release()

        def due_at(k: int) -> float:
            return started + k / plan.rate

        while tally.scheduled < plan.total and not self._stop.is_set():
            due = min(plan.total, math.floor((loop.time() - started) * plan.rate) + 1)
            while tally.scheduled < due and not self._stop.is_set():
                await slots.acquire()  # the server is behind: wait; the schedule catches up
                count = min(plan.batch, due - tally.scheduled)
                at = datetime.now(UTC)
                events = [self.traffic.event(at) for _ in range(count)]
                tally.scheduled += count
                task = asyncio.create_task(send(events))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            progress(tally, loop.time() - started)
            if tally.scheduled >= plan.total:
                break
            # wake when a batch is full or a tick has passed, never before the next is due
            full = min(due_at(tally.scheduled + plan.batch - 1), loop.time() + TICK)
            wake = max(due_at(tally.scheduled), full)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, wake - loop.time()))
        while self._sending:  # the answers of what is on its way
            await asyncio.wait(set(self._sending), timeout=TICK)
            progress(tally, loop.time() - started)
        return loop.time() - started


# ---- the command ----------------------------------------------------------------------------


def _duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text).total_seconds()
        except ValueError as exc:
            raise typer.BadParameter(
                f"{text!r} is not a duration: seconds (30) or a whole number and a unit (30s, "
                "5m, 1h)",
                param_hint="--duration",
            ) from exc
    if not (seconds > 0 and math.isfinite(seconds)):
        raise typer.BadParameter(f"{text!r} must be above 0 seconds", param_hint="--duration")
    return seconds


def _types(text: str | None) -> dict[str, float] | None:
    """``"customer.create,transaction.paid.create"`` (their usual weights) or with weights,
    ``"customer.create=3,transaction.paid.create=1"``."""
    if text is None:
        return None
    weights: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, weight = part.partition("=")
        try:
            weights[name.strip()] = float(weight) if weight else DEFAULT_WEIGHTS.get(name, 0.0)
        except ValueError:
            raise typer.BadParameter(
                f"{part!r}: the weight is not a number", param_hint="--types"
            ) from None
    try:
        return weights_for(weights)
    except HotspotWebhooksError as exc:
        raise typer.BadParameter(
            exc.message.removeprefix("types: "), param_hint="--types"
        ) from None


def simulate(
    locations: Annotated[
        int | None,
        typer.Option(
            "--locations",
            metavar="N",
            min=1,
            max=999,
            help="Simulate N locations, sim-001 ... sim-N, created for the operator when "
            "missing. Default: 3 (unless --location is given).",
            show_default=False,
        ),
    ] = None,
    location: Annotated[
        list[str] | None,
        typer.Option(
            "--location",
            help="Emit at this existing location instead (repeat for several).",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", metavar="PER_SECOND", min=0.01, max=100_000, help="Events per second."
        ),
    ] = 10.0,
    duration: Annotated[
        str, typer.Option("--duration", help="How long: seconds (30) or 30s, 5m, 1h.")
    ] = "60s",
    types: Annotated[
        str | None,
        typer.Option(
            "--types",
            help="Only these types, comma-separated, in their usual proportions, or with "
            "weights: customer.create=3,transaction.paid.create=1. Default: all six.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            metavar="N",
            help="Repeatable traffic: the same seed makes the same guests and payloads in the "
            "same order (dates are the time of sending, and which location is busiest follows "
            "the hour there; event ids stay unique per run).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            metavar="N",
            min=1,
            max=1000,
            help="At most this many events per request (or "
            "transaction); what falls due within 0.1 s goes out together.",
        ),
    ] = 100,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="Owner of the simulated locations (id or name), created when missing; for "
            f"the database or an admin token. Default: {DEFAULT_OPERATOR}.",
            show_default=False,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="HOTSPOT_WEBHOOKS_URL",
            help="Emit over REST to this running server (POST /v1/events/batch) instead of "
            "into the database.",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="HOTSPOT_WEBHOOKS_TOKEN",
            help="With --url: an operator's token (its own locations) or the admin's.",
            show_default=False,
        ),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Emit realistic hotspot traffic (guests registering, subscribing and paying, voucher,
    MAC and social logins) at a steady rate, with a progress bar and a summary.

    Over REST with --url and --token (or HOTSPOT_WEBHOOKS_URL and HOTSPOT_WEBHOOKS_TOKEN),
    else straight into the database (--db, else HOTSPOT_WEBHOOKS_DATABASE_URL), which a
    running serve or worker then delivers. Webhooks subscribed to the locations receive
    the events. Ctrl-C stops and prints the summary. Exits 1 when an event was refused,
    130 when interrupted.
    """
    seconds = _duration(duration)
    weights = _types(types)
    existing = list(dict.fromkeys(location or []))
    if existing and locations is not None:
        fail(
            "give --locations N (simulated locations) or --location ID (existing ones), not both", 2
        )
    create = [] if existing else [f"sim-{n:03d}" for n in range(1, (locations or 3) + 1)]
    total = round(rate * seconds)
    if total < 1:
        fail(f"--rate {rate:g} for {seconds:g} s makes no event: raise one of them", 2)
    if url is not None and db is None and not token:
        fail("--url needs --token (or HOTSPOT_WEBHOOKS_TOKEN): an operator's or the admin's", 2)
    plan = Plan(rate=rate, total=total, batch=batch)

    async def work() -> tuple[dict[str, Any], bool]:
        backend: RemoteService | Service
        if url is not None and db is None:
            if not url.startswith(("http://", "https://")):
                raise SimulationError(f"--url {url!r} must start with http:// or https://")
            backend, target = RemoteService(url, str(token)), url.rstrip("/")
        else:
            config = settings(db)
            backend = await Service.open(config)
            target = display_url(config.database_url)
        try:
            emitter = Emitter(backend, target)
            label = await emitter.prepare(create, existing, operator)
            traffic = Traffic(
                [*create, *existing], seed=seed, types=weights, operator=label, run=new_id("sim")
            )
            return await _run(traffic, emitter, plan, as_json)
        finally:
            await backend.close()

    summary, interrupted = run(work)
    if as_json:
        show(summary, True)
    else:
        _print_summary(summary)
    if summary["failed_events"]:
        raise typer.Exit(1)
    if interrupted:
        raise typer.Exit(130)


async def _run(
    traffic: Traffic, emitter: Emitter, plan: Plan, as_json: bool
) -> tuple[dict[str, Any], bool]:
    """The simulation under a progress bar (on a terminal), Ctrl-C and SIGTERM stopping it."""
    loop = asyncio.get_running_loop()
    simulation = Simulation(traffic, emitter, plan)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, simulation.interrupt)
    columns = (
        TextColumn("[bold]simulate[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[sent]:>7,} events"),
        TextColumn("{task.fields[rate]:>8.1f}/s"),
        TextColumn("{task.fields[errors]:,} errors"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err, disable=not err.is_terminal) as bar:
            task = bar.add_task("simulate", total=plan.total, sent=0, rate=0.0, errors=0)

            def progress(tally: Tally, elapsed: float) -> None:
                bar.update(
                    task,
                    completed=tally.emitted + tally.failed,
                    sent=tally.emitted,
                    rate=tally.emitted / elapsed if elapsed > 0 else 0.0,
                    errors=tally.failed,
                )

            elapsed = await simulation.run(progress)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    summary = simulation.tally.summary(
        elapsed,
        plan.rate,
        target=emitter.target,
        run=traffic.run,
        locations=[loc.id for loc in traffic.locations],
        interrupted=simulation.interrupted,
    )
    return summary, simulation.interrupted


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=line("simulate → ", summary["target"]), show_lines=False)
    table.add_column("event type")
    table.add_column("events", justify="right")
    for name, count in summary["by_type"].items():
        table.add_row(line(name), line(f"{count:,}"))
    table.add_row(line(("total", "bold")), line((f"{summary['events']:,}", "bold")))
    out.print(table)
    rate, latency = summary["rate"], summary["latency_ms"]
    lines = [
        f"deliveries created  {summary['deliveries']:,}",
        f"duplicates          {summary['duplicates']:,}",
        f"rate                {rate['achieved']:,.1f}/s of {rate['target']:,g}/s over "
        f"{summary['seconds']:,.1f} s",
        f"emit latency        p50 {latency['p50']} ms · p95 {latency['p95']} ms · max "
        f"{latency['max']} ms ({latency['requests']:,} requests)",
        f"locations           {', '.join(summary['locations'])}",
        f"event ids           {summary['run']}-*",
    ]
    for text in lines:
        out.print(line(text))
    if summary["interrupted"]:
        out.print(line(("interrupted: stopped before the end", "yellow")))
    if summary["failed_events"]:
        out.print(line((f"{summary['failed_events']:,} events refused:", "red")))
        for error in summary["errors"]:
            out.print(line("  ", (f"{error['requests']:,}×", "red"), " ", error["message"]))
    else:
        out.print(line(("no errors", "green")))
