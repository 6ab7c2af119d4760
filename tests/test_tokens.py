"""Token lifecycle (SPEC §5): ``GET /v1/tokens`` lists tokens, never their values;
``DELETE /v1/tokens/{id}`` revokes one, at once (on other API processes too:
test_access_lifecycle.py). An operator lists and revokes only its
own tokens (another's answer 404); the admin any of them, but never the last admin token (409).

Over real HTTP against the API served by uvicorn, on SQLite and on PostgreSQL; the CLI's
``tokens list`` and ``tokens revoke`` as the real process on a SQLite file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotspot_webhooks.config import Settings
from hotspot_webhooks.service import Service
from tests.conftest import run_cli
from tests.live_api import ADMIN_TOKEN, LiveAPI
from tests.shapes import error_of

BACKENDS = ("sqlite", "postgresql")  # every test with a database runs on both
LISTED_FIELDS = {"id", "operator_id", "created_at"}

MakeAPI = Callable[..., Any]


async def operator_with_two_tokens(api: LiveAPI, name: str) -> tuple[str, list[dict[str, Any]]]:
    """Create operator ``name`` and a second token for it; its id and both created tokens."""
    created = await api.ok("POST", "/v1/operators", json={"name": name})
    further = await api.ok("POST", f"/v1/operators/{created['id']}/tokens")
    listed = (await api.ok("GET", f"/v1/tokens?operator_id={created['id']}"))["data"]
    [first] = [t for t in listed if t["id"] != further["id"]]
    first_token = {"id": first["id"], "operator_id": created["id"], "token": created["token"]}
    return created["id"], [first_token, further]


async def test_an_operator_lists_its_own_tokens_without_their_values(api: LiveAPI) -> None:
    alpha_id, alpha_tokens = await operator_with_two_tokens(api, "alpha")
    bravo_id, bravo_tokens = await operator_with_two_tokens(api, "bravo")

    listed = await api.call("GET", "/v1/tokens", alpha_tokens[0]["token"])
    # asking for another operator's tokens shows still only its own
    asked_for_bravo = await api.call(
        "GET", f"/v1/tokens?operator_id={bravo_id}", alpha_tokens[0]["token"]
    )

    for response in (listed, asked_for_bravo):
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert [t["id"] for t in data] == [t["id"] for t in alpha_tokens]
        assert all(set(t) == LISTED_FIELDS and t["operator_id"] == alpha_id for t in data)
        for token in alpha_tokens + bravo_tokens:
            assert token["token"] not in response.text
        assert response.json()["next_cursor"] is None


async def test_the_admin_lists_every_token_or_one_operators(api: LiveAPI) -> None:
    alpha_id, alpha_tokens = await operator_with_two_tokens(api, "alpha")
    bravo_id, bravo_tokens = await operator_with_two_tokens(api, "bravo")

    everything = (await api.ok("GET", "/v1/tokens"))["data"]
    bravos = (await api.ok("GET", "/v1/tokens?operator_id=bravo"))["data"]  # by name

    assert {t["id"] for t in alpha_tokens + bravo_tokens} <= {t["id"] for t in everything}
    assert [t["id"] for t in bravos] == [t["id"] for t in bravo_tokens]
    assert {t["operator_id"] for t in bravos} == {bravo_id}
    assert alpha_id not in {t["operator_id"] for t in bravos}
    error_of(await api.call("GET", "/v1/tokens?operator_id=op-nobody"), 404)


async def test_a_revoked_token_gets_401_on_the_very_next_request(api: LiveAPI) -> None:
    _, (kept, revoked) = await operator_with_two_tokens(api, "alpha")
    await api.ok("GET", "/v1/locations", revoked["token"])  # known, and used just now

    assert (
        await api.call("DELETE", f"/v1/tokens/{revoked['id']}", kept["token"])
    ).status_code == 204

    error = error_of(await api.call("GET", "/v1/locations", revoked["token"]), 401)
    assert "not valid" in error["message"]
    await api.ok("GET", "/v1/locations", kept["token"])
    listed = (await api.ok("GET", "/v1/tokens", kept["token"]))["data"]
    assert [t["id"] for t in listed] == [kept["id"]]


async def test_an_operator_cannot_revoke_another_operators_token(api: LiveAPI) -> None:
    _, (alpha, _) = await operator_with_two_tokens(api, "alpha")
    _, (bravo, _) = await operator_with_two_tokens(api, "bravo")

    error = error_of(await api.call("DELETE", f"/v1/tokens/{bravo['id']}", alpha["token"]), 404)

    assert bravo["id"] in error["message"]
    await api.ok("GET", "/v1/locations", bravo["token"])


async def test_the_admin_revokes_any_operators_token(api: LiveAPI) -> None:
    _, (alpha, spare) = await operator_with_two_tokens(api, "alpha")

    await api.ok("DELETE", f"/v1/tokens/{alpha['id']}")

    error_of(await api.call("GET", "/v1/locations", alpha["token"]), 401)
    await api.ok("GET", "/v1/locations", spare["token"])
    error_of(await api.call("DELETE", f"/v1/tokens/{alpha['id']}"), 404)  # gone already


@pytest.mark.parametrize("token_id", ["tok_nothing", "a%00b", "x" * 300])
async def test_revoking_an_unknown_token_is_404(api: LiveAPI, token_id: str) -> None:
    error_of(await api.call("DELETE", f"/v1/tokens/{token_id}"), 404)


async def test_the_last_admin_token_cannot_be_revoked(
    make_api: MakeAPI, make_settings: Callable[..., Settings]
) -> None:
    """With no admin token configured, the stored admin tokens are all there is: revoking
    the last would leave nobody able to manage operators."""
    service = await Service.open(make_settings(), migrate=True)
    try:
        one = await service.tokens.create(None)
        two = await service.tokens.create(None)
    finally:
        await service.close()
    api: LiveAPI = await make_api(dispatch=False, admin_token=None)

    await api.ok("DELETE", f"/v1/tokens/{one.id}", two.token)
    error = error_of(await api.call("DELETE", f"/v1/tokens/{two.id}", two.token), 409)

    assert "last admin token" in error["message"] and two.id in error["message"]
    assert len(error["message"].splitlines()) == 1
    listed = (await api.ok("GET", "/v1/tokens", two.token))["data"]
    assert [(t["id"], t["operator_id"]) for t in listed] == [(two.id, None)]


async def test_with_a_configured_admin_token_the_stored_ones_may_all_go(
    make_api: MakeAPI, make_settings: Callable[..., Settings]
) -> None:
    service = await Service.open(make_settings(), migrate=True)
    try:
        stored = await service.tokens.create(None)
    finally:
        await service.close()
    api: LiveAPI = await make_api(dispatch=False)  # with ADMIN_TOKEN configured

    await api.ok("DELETE", f"/v1/tokens/{stored.id}")

    error_of(await api.call("GET", "/v1/tokens", stored.token), 401)
    await api.ok("GET", "/v1/tokens", ADMIN_TOKEN)


# ---- the CLI -----------------------------------------------------------------------------------


def cli_json(db: str, *args: str) -> Any:
    result = run_cli(*args, "--json", db=db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_tokens_list_and_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run_cli("migrate", db=db).returncode == 0
    operator = cli_json(db, "operators", "create", "acme")
    further = cli_json(db, "tokens", "create", "acme")
    admin = cli_json(db, "tokens", "create", "--admin")

    listed = cli_json(db, "tokens", "list")["data"]
    acme = cli_json(db, "tokens", "list", "--operator", "acme")["data"]
    revoked = cli_json(db, "tokens", "revoke", further["id"])
    last_admin = run_cli("tokens", "revoke", admin["id"], db=db)
    table = run_cli("tokens", "list", db=db)

    assert {t["id"] for t in listed} >= {further["id"], admin["id"]}
    assert all(set(t) == LISTED_FIELDS for t in listed)
    assert {t["operator_id"] for t in acme} == {operator["id"]} and len(acme) == 2
    assert revoked == {"id": further["id"], "revoked": True}
    assert further["id"] not in {t["id"] for t in cli_json(db, "tokens", "list")["data"]}
    assert last_admin.returncode == 1
    [line] = last_admin.stderr.strip().splitlines()
    assert "last admin token" in line
    assert admin["id"] in table.stdout and operator["token"] not in table.stdout
