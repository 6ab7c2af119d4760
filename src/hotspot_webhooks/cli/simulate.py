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
from typing import Annotated, Any, Protocol

import aiohttp
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..config import parse_duration
from ..errors import HotspotWebhooksError, NotFound
from ..ids import new_id
from ..models import EmitResult
from ..service import EmitRequest, Service
from ..store.database import display_url
from ..traffic import DEFAULT_WEIGHTS, SimulatedEvent, Traffic, weights_for
from .common import Db, Json, err, fail, out, run, settings
from .output import show

MAX_IN_FLIGHT = 8  # requests (or database batches) waiting for their answer at once
TICK = 0.1  # seconds: what falls due within a tick goes out together
DEFAULT_OPERATOR = "simulator"
REQUEST_TIMEOUT = 30.0


class SimulationError(HotspotWebhooksError):
    """What stops a simulation or refuses a batch, said in one line: the server's answer, or
    a location or operator that is not as needed."""


# ---- where events go ----------------------------------------------------------------------


class Sink(Protocol):
    """Where the simulated events are emitted: a running server, or the database."""

    target: str

    async def prepare(
        self, create: Sequence[str], existing: Sequence[str], operator: str | None
    ) -> str:
        """Make sure the locations are there (creating ``create``); return the operator's
        name for the payloads."""

    async def emit(self, events: Sequence[SimulatedEvent]) -> list[EmitResult]: ...

    async def close(self) -> None: ...


class RestSink:
    """``POST /v1/events/batch`` to a running server, with an operator's or the admin's
    token."""

    def __init__(self, url: str, token: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise SimulationError(f"--url {url!r} must start with http:// or https://")
        self.base = url.rstrip("/")
        self.target = self.base
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        )

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            async with self._session.request(method, self.base + path, json=body) as response:
                text = await response.text()
                try:
                    answer = await response.json(content_type=None) if text else None
                except ValueError:
                    answer = text
                return response.status, answer
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise SimulationError(f"cannot reach {self.base}: {reason}") from None

    async def _ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self._call(method, path, body)
        if status >= 300:
            raise SimulationError(f"{method} {path}: {_server_error(status, answer)}")
        return answer

    async def prepare(
        self, create: Sequence[str], existing: Sequence[str], operator: str | None
    ) -> str:
        status, answer = await self._call("GET", "/v1/operators")
        if status == 200:  # the admin's token: locations go to --operator, made if missing
            name = operator or DEFAULT_OPERATOR
            found = [o for o in answer["data"] if name in (o["id"], o["name"])]
            owner = found[0] if found else await self._ok("POST", "/v1/operators", {"name": name})
            owner_id, label = str(owner["id"]), str(owner["name"])
        elif status == 403:  # an operator's token: its own locations
            if operator is not None:
                raise SimulationError(
                    "--operator is for the admin's token; an operator's token simulates at "
                    "that operator's own locations: leave --operator out"
                )
            owner_id = label = ""
        else:
            raise SimulationError(f"GET /v1/operators: {_server_error(status, answer)}")
        for location_id in [*create, *existing]:
            status, answer = await self._call("GET", f"/v1/locations/{location_id}")
            if status == 404 and location_id in create:
                body = {"id": location_id, "name": _location_name(location_id)}
                if owner_id:
                    body["operator_id"] = owner_id
                status, answer = await self._call("POST", "/v1/locations", body)
                if status == 409:
                    raise SimulationError(
                        f"location {location_id} exists already, and not for this token (a "
                        "location id is one for the whole server): simulate at your own with "
                        "--location ID, or with the admin's token and --operator OWNER"
                    )
                if status != 201:
                    raise SimulationError(f"POST /v1/locations: {_server_error(status, answer)}")
            elif status == 404:
                raise SimulationError(f"--location {location_id}: no such location")
            elif status != 200:
                raise SimulationError(
                    f"GET /v1/locations/{location_id}: {_server_error(status, answer)}"
                )
            elif owner_id and answer["operator_id"] != owner_id and location_id in create:
                raise SimulationError(
                    f"location {location_id} belongs to operator {answer['operator_id']}, not "
                    f"{label}: name it with --operator, or pick others with --location"
                )
            label = label or str(answer["operator_id"])
        return label

    async def emit(self, events: Sequence[SimulatedEvent]) -> list[EmitResult]:
        body = {"events": [e.as_request() for e in events]}
        status, answer = await self._call("POST", "/v1/events/batch", body)
        if status != 202:
            raise SimulationError(_server_error(status, answer))
        return [EmitResult.model_validate(result) for result in answer["data"]]

    async def close(self) -> None:
        await self._session.close()


class DatabaseSink:
    """``Service.emit_many`` on the database, as ``emit`` does (acting as the admin)."""

    def __init__(self, service: Service, database_url: str) -> None:
        self.service = service
        self.target = display_url(database_url)

    async def prepare(
        self, create: Sequence[str], existing: Sequence[str], operator: str | None
    ) -> str:
        name = operator or DEFAULT_OPERATOR
        owners = [o for o in await self.service.list_operators() if name in (o.id, o.name)]
        owner = owners[0] if owners else await self.service.create_operator(name)
        for location_id in [*create, *existing]:
            try:
                found = await self.service.get_location(location_id)
            except NotFound:
                if location_id not in create:
                    raise SimulationError(f"--location {location_id}: no such location") from None
                await self.service.create_location(
                    location_id, _location_name(location_id), owner.id
                )
                continue
            if location_id in create and found.operator_id != owner.id:
                raise SimulationError(
                    f"location {location_id} belongs to operator {found.operator_id}, not "
                    f"{owner.name}: name it with --operator, or pick others with --location"
                )
        return owner.name

    async def emit(self, events: Sequence[SimulatedEvent]) -> list[EmitResult]:
        requests = [EmitRequest(e.type, e.location_id, e.data, e.id) for e in events]
        return await self.service.emit_many(requests)

    async def close(self) -> None:
        await self.service.close()


def _server_error(status: int, answer: Any) -> str:
    """The server's own message (its error shape), else what it said."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return f"HTTP {status}: {answer['error'].get('message')}"
    return f"HTTP {status}: {str(answer)[:200] if answer else '(empty answer)'}"


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

    def __init__(self, traffic: Traffic, sink: Sink, plan: Plan) -> None:
        self.traffic = traffic
        self.sink = sink
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
                results = await self.sink.emit(events)
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
        sink: Sink
        if url is not None and db is None:
            sink = RestSink(url, str(token))
        else:
            config = settings(db)
            sink = DatabaseSink(await Service.open(config), config.database_url)
        try:
            label = await sink.prepare(create, existing, operator)
            traffic = Traffic(
                [*create, *existing], seed=seed, types=weights, operator=label, run=new_id("sim")
            )
            return await _run(traffic, sink, plan, as_json)
        finally:
            await sink.close()

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
    traffic: Traffic, sink: Sink, plan: Plan, as_json: bool
) -> tuple[dict[str, Any], bool]:
    """The simulation under a progress bar (on a terminal), Ctrl-C and SIGTERM stopping it."""
    loop = asyncio.get_running_loop()
    simulation = Simulation(traffic, sink, plan)
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
        target=sink.target,
        run=traffic.run,
        locations=[loc.id for loc in traffic.locations],
        interrupted=simulation.interrupted,
    )
    return summary, simulation.interrupted


def _print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"simulate → {summary['target']}", show_lines=False)
    table.add_column("event type")
    table.add_column("events", justify="right")
    for name, count in summary["by_type"].items():
        table.add_row(name, f"{count:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{summary['events']:,}[/bold]")
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
    for line in lines:
        out.print(line, highlight=False)
    if summary["interrupted"]:
        out.print("[yellow]interrupted: stopped before the end[/yellow]")
    if summary["failed_events"]:
        out.print(f"[red]{summary['failed_events']:,} events refused:[/red]")
        for error in summary["errors"]:
            out.print(f"  [red]{error['requests']:,}×[/red] {error['message']}", highlight=False)
    else:
        out.print("[green]no errors[/green]")
