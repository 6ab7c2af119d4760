"""``worker --processes N`` as an operator runs it, on PostgreSQL: N registered dispatchers
share the work, a child killed is replaced, SIGTERM stops them all cleanly, and killing the
supervisor itself leaves no worker behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from hotspot_webhooks import catalog
from hotspot_webhooks.service import EmitRequest, Service
from tests.receivers import PythonReceiver

pytestmark = pytest.mark.postgresql_only

EVENT = "transaction.paid.create"
SAMPLE = catalog.EVENT_TYPES[EVENT].sample


async def start_supervisor(service: Service, processes: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "HOTSPOT_WEBHOOKS_DATABASE_URL": service.settings.database_url,
        "HOTSPOT_WEBHOOKS_SECRET_KEY": service.settings.secret_key or "",
        "HOTSPOT_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "HOTSPOT_WEBHOOKS_INTERVAL": "0.2",
        "HOTSPOT_WEBHOOKS_TIMEOUT": "2",
        "HOTSPOT_WEBHOOKS_HEARTBEAT": "0.5",
        "HOTSPOT_WEBHOOKS_WORKER_TIMEOUT": "2",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hotspot_webhooks", "worker", "--processes", str(processes),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within:g} s")
        await asyncio.sleep(0.1)


async def worker_pids(service: Service) -> set[int]:
    """The pids of the dispatchers registered now (each child registers itself)."""
    async with service.store.db.read() as conn:
        return {int(pid) for (pid,) in await conn.execute(text("SELECT pid FROM workers"))}


async def delivered(service: Service) -> int:
    async with service.store.db.read() as conn:
        query = text("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
        return int((await conn.execute(query)).scalar_one())


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_processes_share_the_work_a_dead_one_is_replaced_and_sigterm_stops_all(
    service: Service, location: str, python_receiver: PythonReceiver
) -> None:
    await service.webhooks.create(location, EVENT, python_receiver.url)
    supervisor = await start_supervisor(service, processes=2)
    try:
        await eventually(lambda: _count_is(worker_pids(service), 2))
        first = await worker_pids(service)
        assert first == children_of(supervisor.pid)  # its own children, each registered

        await service.events.emit_many([EmitRequest(EVENT, location, dict(SAMPLE))] * 300)
        await eventually(lambda: _count_is(delivered(service), 300))

        doomed = min(first)
        os.kill(doomed, signal.SIGKILL)
        # another child takes its place and registers; the dead one's row is taken over
        await eventually(lambda: _replaced(service, first, doomed), within=20)
        await service.events.emit_many([EmitRequest(EVENT, location, dict(SAMPLE))] * 300)
        await eventually(lambda: _count_is(delivered(service), 600))
        ids = [r.header("X-Hotspotsystem-Delivery") for r in python_receiver.requests]
        assert len(ids) == len(set(ids)) == 600  # the kill came between bursts: no repeats

        children = children_of(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(supervisor.wait(), 20) == 0
        assert not any(alive(pid) for pid in children)
        assert await worker_pids(service) == set()  # each deregistered on its way out
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()


async def test_killing_the_supervisor_leaves_no_worker_behind(service: Service) -> None:
    supervisor = await start_supervisor(service, processes=2)
    try:
        await eventually(lambda: _count_is(worker_pids(service), 2))
        children = children_of(supervisor.pid)
        assert len(children) == 2
    finally:
        supervisor.kill()  # SIGKILL: it cannot stop them itself
        await supervisor.wait()
    await eventually(lambda: _none_alive(children), within=20)


async def _count_is(count: Awaitable[int | set[int]], wanted: int) -> bool:
    found = await count
    return (len(found) if isinstance(found, set) else found) == wanted


async def _none_alive(pids: set[int]) -> bool:
    return not any(alive(pid) for pid in pids)


async def _replaced(service: Service, first: set[int], doomed: int) -> bool:
    now = await worker_pids(service)
    return doomed not in now and len(now - first) == 1 and len(now) == 2
