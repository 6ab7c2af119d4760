"""Property-based fuzzing of the REST API from its own ``/openapi.json`` (schemathesis).

Every operation gets schema-valid and schema-violating requests, stateful sequences follow
the links between them, and every check schemathesis has runs: no 5xx, every answer matches
the documented schema and status codes, valid input is accepted and invalid input refused.
It runs on SQLite and on PostgreSQL, three times on each: as an operator over everything but
token revocation, as that operator over its tokens (last: it may revoke its own), and as the
admin over the admin-only operations.

The failed-authentication lockout is lifted for it: schemathesis sends bad tokens on purpose,
and after 20 every request got 429 (test_lockout.py tests the lockout).

The seed is fixed so CI is repeatable. The knobs are ``HW_FUZZ_*``, not ``HOTSPOT_WEBHOOKS_*``:
conftest.py deletes every ``HOTSPOT_WEBHOOKS_*`` variable before this module is imported.
``HW_FUZZ_EXAMPLES`` is schemathesis's ``--max-examples`` (15 in ``make test``, 250 in
``make fuzz``); ``HW_FUZZ_SEED`` picks another seed; ``HW_FUZZ_MIN_REQUESTS`` makes the test
insist on that many generated requests per backend (``make fuzz``: 10,000);
``HW_FUZZ_PHASES_ON_POSTGRESQL`` and ``HW_FUZZ_TIMEOUT`` (seconds) are for long runs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.api import app as app_module
from hotspot_webhooks.api.lockout import FailedAuthLimit
from tests.live_api import ADMIN_TOKEN, LiveAPI

BACKENDS = ("sqlite", "postgresql")
SEED = os.environ.get("HW_FUZZ_SEED", "20261129")
EXAMPLES = os.environ.get("HW_FUZZ_EXAMPLES", "15")
# The coverage phase (some 3,000 deterministic requests, mostly schema-violating input that
# is refused before the store is reached) runs on SQLite only unless asked: it doubles the
# PostgreSQL run's time in `make test` for little the SQLite run has not covered.
PHASES_ON_POSTGRESQL = os.environ.get("HW_FUZZ_PHASES_ON_POSTGRESQL", "examples,fuzzing,stateful")
MIN_REQUESTS = int(os.environ.get("HW_FUZZ_MIN_REQUESTS", "0"))
SCHEMATHESIS = Path(sys.executable).with_name("st")
TEST_CASES = re.compile(r"^Test cases:\s*\n\s*(\d+) generated", re.MULTILINE)


def generated(output: str) -> int:
    """How many test cases (one request each) schemathesis says it generated."""
    found = TEST_CASES.search(output)
    assert found is not None, f"no 'Test cases: N generated' in:\n{output[-3000:]}"
    return int(found.group(1))


SEMANTIC_422 = "".join(
    f"""
[[operations]]
include-path = "{path}"
include-method = "{method}"
checks.positive_data_acceptance.expected-statuses = ["2XX", "3XX", 401, 403, 404, 409, 422, 429]
"""
    for method, path in (
        ("POST", "/v1/webhooks"),
        ("PATCH", "/v1/webhooks/{webhook_id}"),
        ("GET", "/v1/webhooks/{webhook_id}/preview"),
    )
)


async def schemathesis(api: LiveAPI, token: str, workdir: Path, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--no-color",
        "--workers",  # 1: CPython 3.11's ast.parse is not thread-safe (hypothesis crashes)
        "1",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,  # its cache directory goes there, not into the checkout
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(int(os.environ.get("HW_FUZZ_TIMEOUT", "600")))
async def test_fuzzing_the_api_finds_no_server_error_and_no_schema_violation(
    make_api: Callable[..., Any],
    tmp_path: Path,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The failed-authentication lockout is lifted: schemathesis sends bad tokens on purpose
    # (its auth checks), and after 20 of them every request would get 429 and test nothing
    # behind authentication. test_lockout.py tests the lockout.
    monkeypatch.setattr(
        app_module, "FailedAuthLimit", functools.partial(FailedAuthLimit, allowed=sys.maxsize)
    )
    # No dispatcher, and no `test` operation: fuzzed webhooks point anywhere, and nothing
    # may be sent there. Private targets are allowed so that every URL of the published
    # shape is valid input.
    api: LiveAPI = await make_api(dispatch=False, allow_private_targets=True, timeout=2)
    token = await api.operator_at("loc-1042", name="fuzz")  # the id the schema's examples use

    runs = {
        # DELETE /v1/tokens/{id} is left out here: the stateful phase lists the operator's
        # tokens and revokes one, its own, after which everything else would only get 401.
        "operator": (
            token,
            "--exclude-path",
            "/v1/webhooks/{webhook_id}/test",
            "--exclude-path-regex",
            "^/v1/tokens/",
        ),
        "operator tokens": (token, "--include-path-regex", "^/v1/tokens"),
        "admin": (ADMIN_TOKEN, "--include-path-regex", "^/v1/(operators|tokens)"),
    }
    # §9's fields carry checks a JSON Schema cannot state (a filter's operators, a template
    # that must compile and render every subscribed type's sample, header names we set
    # ourselves, a preset's answers): for the operations that take them, a 422 naming the
    # field is an expected answer to schema-valid input
    (tmp_path / "schemathesis.toml").write_text(SEMANTIC_422)
    phases = (
        PHASES_ON_POSTGRESQL if backend == "postgresql" else "examples,coverage,fuzzing,stateful"
    )
    counts: dict[str, int] = {}
    failures: list[str] = []
    for name, (caller, *options) in runs.items():  # all of them, so one failure hides none
        started = time.monotonic()
        code, output = await schemathesis(api, caller, tmp_path, "--phases", phases, *options)
        counts[name] = generated(output)
        took = time.monotonic() - started
        print(f"\n{backend}, as {name}: {counts[name]} requests in {took:.0f} s")
        if code != 0:
            failures.append(f"{backend}, as {name}:\n{output[-6000:]}")

    total = sum(counts.values())
    summary = f"{backend}: {total} requests generated ({counts}, --max-examples {EXAMPLES})"
    print(summary)
    if total < MIN_REQUESTS:
        failures.append(f"fewer requests than HW_FUZZ_MIN_REQUESTS={MIN_REQUESTS}")
    assert not failures, "\n\n".join([*failures, summary])
