"""Before and after in one run: a benchmark of this tree against an earlier revision.

    .venv/bin/python bench/versus.py REV [--bench dispatch|ingest] [--rounds 3]
        [--script-from-here] [--before "BENCH ARGS"] [-- BENCH ARGS]

Checks REV out into a temporary git worktree and runs the chosen benchmark, one round at a time,
alternating between REV's code and this tree's (each with its own ``src`` first on the path,
in fresh processes), so both meet the same moments of a noisy machine. Prints every round's
lines under its label, then the ratios each side printed, side by side. Arguments after
``--`` go to the benchmark itself (e.g. ``-- --pending 0 --loops asyncio``); ``--before``
gives REV's side other ones. With ``--script-from-here`` both sides run this tree's benchmark
script (a case REV's script does not have), each against its own code.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATIO = re.compile(r"ratio ([0-9]+\.[0-9]+)")


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


def ratios(lines: list[str]) -> list[float]:
    """The ratios one round printed (its ``round 1: ... ratio X`` lines), in order."""
    return [
        float(m) for line in lines if line.lstrip().startswith("round") for m in RATIO.findall(line)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="the git revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--bench", choices=["dispatch", "ingest"], default="dispatch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--script-from-here", action="store_true", help="run this tree's script on both sides"
    )
    parser.add_argument("--before", default=None, help="the benchmark's arguments on REV's side")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra = argv[split + 1 :]  # for the benchmark itself
    sides: dict[str, list[list[float]]] = {args.revision: [], "this tree": []}
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
                    sides[label].append(ratios(lines))
                    print(f"--- round {number}, {label}")
                    print("\n".join(f"    {line}" for line in lines), flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False
            )
    print(f"\nratios per round ({args.bench}; each list is what one round printed, in order):")
    for label, rounds in sides.items():
        print(f"  {label:>12}: " + "  ".join(str(r) for r in rounds))


if __name__ == "__main__":
    main()
