"""Property-based fuzzing of the REST API from its own ``/openapi.json`` (schemathesis).

Every operation gets schema-valid and schema-violating requests, stateful sequences follow
the links between them, and every check schemathesis has runs: no 5xx, every answer matches
the documented schema and status codes, valid input is accepted and invalid input refused.
It runs twice: as an operator over everything, and as the admin over the admin-only
operations. The seed is fixed so CI is repeatable; set HOTSPOT_WEBHOOKS_FUZZ_SEED and
HOTSPOT_WEBHOOKS_FUZZ_EXAMPLES to explore further.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.live_api import ADMIN_TOKEN, LiveAPI

SEED = os.environ.get("HOTSPOT_WEBHOOKS_FUZZ_SEED", "20261129")
EXAMPLES = os.environ.get("HOTSPOT_WEBHOOKS_FUZZ_EXAMPLES", "15")
SCHEMATHESIS = Path(sys.executable).with_name("st")


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
        "--workers",
        "1",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,  # its cache directory goes there, not into the checkout
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(600)
async def test_fuzzing_the_api_finds_no_server_error_and_no_schema_violation(
    make_api: Callable[..., Any], tmp_path: Path
) -> None:
    # No dispatcher, and no `test` operation: fuzzed webhooks point anywhere, and nothing
    # may be sent there. Private targets are allowed so that every URL of the published
    # shape is valid input.
    api: LiveAPI = await make_api(dispatch=False, allow_private_targets=True, timeout=2)
    token = await api.operator_at("loc-1042", name="fuzz")  # the id the schema's examples use

    code, output = await schemathesis(
        api, token, tmp_path, "--exclude-path", "/v1/webhooks/{webhook_id}/test"
    )
    assert code == 0, output[-6000:]
    assert "passed" in output

    code, output = await schemathesis(
        api, ADMIN_TOKEN, tmp_path, "--include-path-regex", "^/v1/operators"
    )
    assert code == 0, output[-6000:]
