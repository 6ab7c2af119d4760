"""The receiver SDK needs nothing but the standard library (SPEC §5, issue 13).

``hotspot_webhooks.receiver`` is imported in a fresh virtualenv with no package installed,
our ``src/`` alone on its path, and verifies a delivery the service's own signing code made:
whatever it imports is standard library, and the server's dependencies are absent there. The
file copied alone, as its docstring invites, works the same.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hotspot_webhooks import catalog
from hotspot_webhooks.signing import DeliveryRequest, Signer, delivery_headers
from tests.receivers import ROOT

API_KEY = "hwk_fresh_venv_key_0123456789"

# Runs inside the fresh virtualenv (@MODULE@: what it imports): verify the delivery given on
# stdin, a tampered copy and the Standard Webhooks signature alone; report what got loaded.
PROBE = """
import json, sys
for server_side in ("pydantic", "fastapi", "sqlalchemy", "aiohttp"):
    try:
        __import__(server_side)
    except ImportError:
        pass
    else:
        sys.exit(f"{server_side} is importable: this is not a bare virtualenv")
before = set(sys.modules)
from @MODULE@ import InvalidSignature, parse
given = json.load(sys.stdin)
event = parse(given["headers"], given["body"].encode(), api_key=given["key"])
try:
    parse(given["headers"], given["body"].encode() + b" ", api_key=given["key"])
    tampered = "accepted"
except InvalidSignature:
    tampered = "refused"
standard = {k: v for k, v in given["headers"].items() if k.startswith("webhook-")}
by_standard = parse(standard, given["body"].encode(), api_key=given["key"])
loaded = sorted({name.partition(".")[0] for name in set(sys.modules) - before})
print(json.dumps({
    "type": event.type, "id": event.id, "data": event.data, "tampered": tampered,
    "standard_id": by_standard.id, "loaded": loaded,
    "foreign": [n for n in loaded if n not in sys.stdlib_module_names and n != "@TOP@"],
    "prefix": sys.prefix, "base_prefix": sys.base_prefix,
}))
"""


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with nothing installed, not even pip, and no system site-packages."""
    where = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


def signed_delivery() -> dict[str, object]:
    sample = catalog.EVENT_TYPES["transaction.social.create"].sample
    body = catalog.serialize(sample)
    request = DeliveryRequest("evt_venv_1", "transaction.social.create", "loc-1", "dlv_1", 1)
    headers = delivery_headers(request, body, [Signer(API_KEY)], int(time.time()))
    return {"headers": headers, "body": body.decode(), "key": API_KEY, "sample": dict(sample)}


def run_probe(python: Path, module: str, path: Path, given: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [
            str(python),
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(path)!r})\n"
            + PROBE.replace("@MODULE@", module).replace("@TOP@", module.partition(".")[0]),
        ],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=path,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


def assert_verified(found: dict[str, object], given: dict[str, object], bare: Path) -> None:
    assert found["prefix"] == str(bare.parent.parent)  # it really ran in the bare virtualenv
    assert found["prefix"] != found["base_prefix"]
    assert (found["type"], found["id"]) == ("transaction.social.create", "evt_venv_1")
    assert found["data"] == given["sample"]
    assert found["tampered"] == "refused"
    assert found["standard_id"] == "evt_venv_1"  # the Standard Webhooks signature alone
    assert found["foreign"] == [], f"imports beyond the standard library: {found['foreign']}"


def test_the_sdk_imports_and_verifies_in_a_bare_virtualenv(bare_venv: Path) -> None:
    given = signed_delivery()
    found = run_probe(bare_venv, "hotspot_webhooks.receiver", ROOT / "src", given)
    assert_verified(found, given, bare_venv)
    assert "hotspot_webhooks" in found["loaded"]  # type: ignore[operator]


def test_receiver_py_copied_alone_into_a_project_works(bare_venv: Path, tmp_path: Path) -> None:
    project = tmp_path / "their_project"
    project.mkdir()
    shutil.copy(ROOT / "src" / "hotspot_webhooks" / "receiver.py", project / "hotspot_receiver.py")
    given = signed_delivery()
    assert_verified(run_probe(bare_venv, "hotspot_receiver", project, given), given, bare_venv)
