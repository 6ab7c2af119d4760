"""``operators`` and ``tokens``: who owns locations, and their API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from .backend import with_backend
from .common import (
    Db,
    Json,
    Yes,
    confirm_deletion,
    deleted,
    fail,
)
from .output import show, shown_once

operators_app = typer.Typer(help="Operators: who owns locations.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@operators_app.command("create")
def operators_create(name: str, db: Db = None, as_json: Json = False) -> None:
    """Create an operator and print its first API token (shown once)."""
    created = with_backend(db, lambda s: s.operators.create(name))
    show(created, as_json)
    if not as_json:
        shown_once("token", "hashed")


@operators_app.command("list")
def operators_list(db: Db = None, as_json: Json = False) -> None:
    """List operators."""
    show(
        with_backend(db, lambda s: s.operators.get_all()),
        as_json,
        ("id", "name", "status", "created_at"),
    )


OperatorRef = Annotated[str, typer.Argument(metavar="OPERATOR", help="Operator id or name.")]


@operators_app.command("disable")
def operators_disable(operator: OperatorRef, db: Db = None, as_json: Json = False) -> None:
    """Disable an operator: its tokens are refused at once and its webhooks disabled (queued
    deliveries fail unsent; events at its locations are still accepted, with no delivery)."""
    show(with_backend(db, lambda s: s.operators.set_status(operator, "disabled")), as_json)


@operators_app.command("enable")
def operators_enable(operator: OperatorRef, db: Db = None, as_json: Json = False) -> None:
    """Enable an operator again: its tokens work, and the webhooks its disabling disabled are
    enabled (use `recover` to re-send what failed meanwhile)."""
    show(with_backend(db, lambda s: s.operators.set_status(operator, "enabled")), as_json)


@operators_app.command("delete")
def operators_delete(
    operator: OperatorRef, yes: Yes = False, db: Db = None, as_json: Json = False
) -> None:
    """Delete an operator with its tokens, locations, webhooks, events, deliveries and
    attempts (its tokens stop at once; if interrupted, run it again)."""
    confirm_deletion(f"operator {operator!r} and everything it owns", yes)
    purged = with_backend(db, lambda s: s.operators.delete(operator))
    show(deleted(operator, purged), as_json)


@tokens_app.command("create")
def tokens_create(
    operator: Annotated[str | None, typer.Argument(help="Operator id or name.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="An admin token instead (e.g. the first was lost).")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a further API token for an operator, or with --admin an admin token (shown once)."""
    if (operator is None) == (not admin):
        fail("give an operator (id or name), or --admin, not both", 2)
    show(with_backend(db, lambda s: s.tokens.create(operator)), as_json)
    if not as_json:
        shown_once("token", "hashed")


@tokens_app.command("list")
def tokens_list(
    operator: Annotated[
        str | None, typer.Option("--operator", help="Only this operator's (id or name).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List API tokens: ids and owners, never the tokens (operator_id '-' is an admin token)."""
    show(
        with_backend(db, lambda s: s.tokens.get_all(operator)),
        as_json,
        ("id", "operator_id", "created_at"),
    )


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (tokens list).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Revoke a token: it stops working at once, on every API process."""
    with_backend(db, lambda s: s.tokens.revoke(token_id))
    show({"id": token_id, "revoked": True}, as_json)
