"""Where a worker's CPU per delivery goes: a sampling profile, split by what the time did.

    .venv/bin/python bench/profile.py [--db postgresql|sqlite] [--deliveries 30000]
        [--rate 500] [--raw profile.txt] [--from profile.txt --cpu-us 98]

Runs one round of ``bench/dispatch.py --processes 1`` (the bare clients, then ``hotspot-webhooks
worker`` draining the filled database to the bench's receiver) under ``py-spy record
--subprocesses``, keeps the samples of the worker's event loop, and sorts each into the step
of a delivery it was taken in (the innermost frame that names one): claiming, the lanes'
scheduling, signing, preparing curl's request, libcurl on the wire (the kernel's work on the
sockets included), curl's callbacks into Python, deciding, counting, recording, reading the
database's answers, and the loop's own work.

Prints each step's share of the loop's samples, and that share of the worker's CPU per delivery
as the same round measured it. py-spy samples a thread whenever it is not asleep, so a thread
woken but still waiting for a core counts as busy: samples in ``epoll_wait`` are shown apart and
left out of the scaling, and on a loaded machine the steps that wake another process (libcurl
sending to the receiver, which may take the core at once) are overstated; the bare request of
``bench/dispatch.py`` is the better figure for libcurl's own cost. The figures are a map of where
to look, not a measurement to compare runs by (``bench/versus.py`` is that).

py-spy comes with the dev extras (``pip install -e '.[dev]'``); it starts the bench as its
child, so no extra privilege is needed where the kernel lets a process trace its children.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = "hotspot_webhooks worker"  # the command line of the profiled process
LOOP = "BaseEventLoop._run_once"
WAITING = "waiting on sockets (epoll_wait; woken but not yet on a core, mostly)"
# a delivery's own steps, matched innermost first: the first rule a frame meets names its step
STEPS: list[tuple[str, tuple[str, ...]]] = [
    ("signing: two HMACs, eleven headers", ("signed_headers",)),
    ("curl's request: URL, body, header list", ("_Exchange.prepare",)),
    ("deciding the outcome", ("Attempts._decide",)),
    ("counting, handing to the recorder", ("Dispatcher._count_and_record",)),
    ("curl's callbacks into Python", ("_Exchange._prerequest", "_Exchange._write", "OnWire.")),
]
# what the loop was running, for the samples of no step above: the first rule that any
# frame of the sample meets
ACTIVITIES: list[tuple[str, tuple[str, ...]]] = [
    (
        "libcurl on the wire, kernel included",
        ("EpollCurlLoop._on_ready", "EpollCurlLoop._on_timeout"),
    ),
    ("sending: start, wait, read the result", ("Dispatcher._send",)),
    ("lanes: scheduling the requests", ("EndpointLanes.",)),
    ("recording (batched writes)", ("Recorder.",)),
    ("claiming, and the loop that claims", ("Dispatcher.run", "Dispatcher._claim_while_room")),
    ("liveness: heartbeats, on-wire marks", ("Liveness.",)),
    ("reading the database's answers", ("_SelectorSocketTransport.",)),
    (WAITING, ("EpollSelector.select",)),
]
OTHER = "the event loop's own work, and the rest"
_LINE = re.compile(r":\d+\)$")


def worker_samples(raw: Iterable[str]) -> collections.Counter[tuple[str, ...]]:
    """The worker's event-loop stacks (frames outermost first, line numbers dropped) and how
    many samples each got, from py-spy's raw (collapsed) output."""
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in raw:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        processes = [i for i, frame in enumerate(frames) if frame.startswith("process ")]
        if not processes or WORKER not in frames[processes[-1]]:
            continue
        inner = tuple(_LINE.sub(")", frame) for frame in frames[processes[-1] + 1 :])
        if any(LOOP in frame for frame in inner):
            stacks[inner] += int(count)
    return stacks


def step_of(frames: tuple[str, ...]) -> str:
    for frame in reversed(frames):
        for step, names in STEPS:
            if any(name in frame for name in names):
                return step
    for step, names in ACTIVITIES:
        if any(name in frame for frame in frames for name in names):
            return step
    return OTHER


def split(stacks: collections.Counter[tuple[str, ...]]) -> collections.Counter[str]:
    steps: collections.Counter[str] = collections.Counter()
    for frames, count in stacks.items():
        steps[step_of(frames)] += count
    return steps


def report(steps: collections.Counter[str], cpu_us: float | None) -> None:
    total = sum(steps.values())
    busy = total - steps[WAITING]
    if not busy:
        sys.exit("no samples of the worker's event loop: did the worker run?")
    print(f"{total} samples of the worker's event loop ({steps[WAITING]} in epoll_wait)")
    scale = f"≈ µs of the {cpu_us:g} measured" if cpu_us else "µs (no CPU figure read)"
    print(f"{'step':<46} {'share':>6}  {scale}")
    for step, count in sorted(steps.items(), key=lambda item: -item[1]):
        if step == WAITING:
            continue
        us = f"{cpu_us * count / busy:.1f}" if cpu_us else "-"
        print(f"{step:<46} {100 * count / busy:5.1f}%  {us:>6}")
    print(f"{WAITING}: {100 * steps[WAITING] / total:.1f}% of all samples, not scaled")


def profile(args: argparse.Namespace, raw: Path) -> float | None:
    """Run the round under py-spy; the worker's CPU µs per delivery that the round measured."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: pip install -e '.[dev]' (or pip install py-spy)")
    bench = [sys.executable, str(HERE / "dispatch.py"), "--processes", "1", "--rounds", "1",
             "--pending", "0", "--deliveries", str(args.deliveries)]  # fmt: skip
    if args.db == "postgresql":
        bench += ["--db", "postgresql"]
    command = [spy, "record", "--subprocesses", "--rate", str(args.rate), "--format", "raw",
               "-o", str(raw), "--", *bench]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not raw.exists():
        sys.exit(f"py-spy or the bench failed:\n{done.stdout}\n{done.stderr}")
    measured = re.search(r"--processes 1: .*? (\d+(?:\.\d+)?) us CPU each.*", done.stdout)
    if measured is None:
        return None
    print(measured.group(0))  # the round's line: rate, CPU, PostgreSQL's share
    return float(measured.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--deliveries", type=int, default=30_000)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output in this file")
    parser.add_argument("--from", dest="source", type=Path, help="read a kept raw output")
    parser.add_argument("--cpu-us", type=float, help="with --from: the measured µs/delivery")
    args = parser.parse_args()
    if args.source:
        cpu_us = args.cpu_us
        raw = args.source
    else:
        raw = args.raw or Path(tempfile.mkdtemp(prefix="hw-profile-")) / "profile.txt"
        cpu_us = profile(args, raw)
    with raw.open() as lines:
        report(split(worker_samples(lines)), cpu_us)


if __name__ == "__main__":
    main()
