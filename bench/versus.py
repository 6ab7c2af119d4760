"""Before and after in one run: a benchmark of this tree against an earlier revision.

    .venv/bin/python bench/versus.py REV [--bench dispatch|ingest|record] [--rounds 3]
        [--script-from-here] [--before "BENCH ARGS"] [-- BENCH ARGS]

Checks REV out into a temporary git worktree and runs the chosen benchmark, one round at a time,
alternating between REV's code and this tree's (each with its own ``src`` first on the path,
in fresh processes), so both meet the same moments of a noisy machine. Prints every round's
lines under its label, then the figures each side printed (ratios, and CPU µs per delivery,
the steadier figure), round by round, with their medians and in how many rounds of a pair
this tree's was the lower. Arguments after
``--`` go to the benchmark itself (e.g. ``-- --pending 0 --loops asyncio``); ``--before``
gives REV's side other ones. With ``--script-from-here`` both sides run this tree's benchmark
script (a case REV's script does not have), each against its own code.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# what each benchmark's rounds print: a name for each figure and the pattern that finds it
FIGURES = {
    "dispatch": {
        "ratio": re.compile(r"(?:round \d+|--processes \d+): .*?ratio ([0-9]+\.[0-9]+)"),
        "worker us": re.compile(r"--processes (?:\d+): .*? ([0-9.]+) us CPU each"),
        "x bare": re.compile(r"--processes (?:\d+): .*? ([0-9.]+) x the ceiling"),
        "postgres us": re.compile(r"postgres ([0-9.]+) us (?:CPU each )?on this database's"),
    },
    "ingest": {"ratio": re.compile(r"round \d+: .*?ratio ([0-9]+\.[0-9]+)")},
    "record": {
        "claim us": re.compile(r"round \d+, .*claim +([0-9.]+) us"),
        "record us": re.compile(r"round \d+, .*record +([0-9.]+) us"),
        "claim server us": re.compile(r"round \d+, .*claim .*?\(server +([0-9.]+) us\)"),
        "record server us": re.compile(r"round \d+, .*record .*?\(server +([0-9.]+) us\)"),
    },
}


def run_round(
    tree: Path, bench: str, extra: list[str], script_tree: Path | None = None
) -> list[str]:
    """One round of ``bench`` with ``tree``'s code (and script, or ``script_tree``'s); its
    output lines."""
    # both: the scripts put HW_BENCH_SRC first on their path, children inherit PYTHONPATH
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "HW_BENCH_SRC": str(tree / "src")}
    script = (script_tree or tree) / "bench" / f"{bench}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--rounds", "1", *extra],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{bench} on {tree} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.splitlines()


def figures(bench: str, lines: list[str]) -> dict[str, list[float]]:
    """The figures one round printed, by name, in the order printed."""
    return {
        name: [float(m) for line in lines for m in pattern.findall(line)]
        for name, pattern in FIGURES[bench].items()
    }


def summary(before: list[dict[str, list[float]]], after: list[dict[str, list[float]]]) -> list[str]:
    """Per figure: every round's values on each side, the medians, and in how many pairs
    this tree's was the lower."""
    lines = []
    for name in before[0] if before else ():
        b = [v for r in before for v in r[name]]
        a = [v for r in after for v in r[name]]
        if not (a and b):
            continue
        lower = sum(x < y for x, y in zip(a, b, strict=False))
        lines.append(
            f"  {name}: before {b} (median {statistics.median(b):g}) · this tree {a} (median "
            f"{statistics.median(a):g}) · this tree lower in {lower} of {min(len(a), len(b))}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="the git revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--bench", choices=sorted(FIGURES), default="dispatch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--script-from-here", action="store_true", help="run this tree's script on both sides"
    )
    parser.add_argument("--before", default=None, help="the benchmark's arguments on REV's side")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra = argv[split + 1 :]  # for the benchmark itself
    sides: dict[str, list[dict[str, list[float]]]] = {args.revision: [], "this tree": []}
    with tempfile.TemporaryDirectory(prefix="hw-versus-") as tmp:
        before = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), args.revision],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for number in range(1, args.rounds + 1):
                for label, tree in ((args.revision, before), ("this tree", ROOT)):
                    arguments = (
                        shlex.split(args.before)
                        if tree is before and args.before is not None
                        else extra
                    )
                    script_tree = ROOT if args.script_from_here else None
                    lines = run_round(tree, args.bench, arguments, script_tree)
                    sides[label].append(figures(args.bench, lines))
                    print(f"--- round {number}, {label}")
                    print("\n".join(f"    {line}" for line in lines), flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False
            )
    print(f"\n{args.bench}, {args.revision} (before) against this tree, round by round:")
    print("\n".join(summary(sides[args.revision], sides["this tree"])))


if __name__ == "__main__":
    main()
