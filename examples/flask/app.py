"""A hotspot-webhooks receiver in Flask: verify, keep each event once, answer at once.

    pip install flask hotspot-webhooks   # or copy hotspot_webhooks/receiver.py: stdlib only
    API_KEY=... INBOX_DB=inbox.sqlite3 flask --app app run --port 8000

Callback URL: http://<host>:8000/hotspot-webhook. Answers 200 for a verified event, new or
already received (delivery is at-least-once, and anything but 200 is retried), 401 for a bad
signature. The slow work (CRM, mailing) is done later by whatever reads the inbox table.
"""

import json
import logging
import os
import sqlite3
from contextlib import closing

from flask import Flask, request

from hotspot_webhooks.receiver import InvalidSignature, ReceivedEvent, parse

API_KEY = os.environ["API_KEY"]
INBOX_DB = os.environ.get("INBOX_DB", "inbox.sqlite3")

app = Flask(__name__)
app.logger.setLevel(logging.INFO)  # show what was received and what was a copy


def open_inbox() -> sqlite3.Connection:
    """The inbox table is the queue and the deduplication both: the event id is its key."""
    db = sqlite3.connect(INBOX_DB, timeout=10)
    db.execute(
        "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, type TEXT,"
        " location_id TEXT, payload TEXT NOT NULL,"
        " received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, processed_at TEXT)"
    )
    return db


def remember(event: ReceivedEvent) -> bool:
    """Store the event unless its id is there already; True if it is new.

    One INSERT, atomic in SQLite: two copies arriving at once store one, across restarts too.
    """
    with closing(open_inbox()) as db, db:
        inserted = db.execute(
            "INSERT INTO inbox (event_id, type, location_id, payload) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event.id, event.type, event.location_id, json.dumps(event.data)),
        )
        return inserted.rowcount == 1


@app.post("/hotspot-webhook")
def hotspot_webhook() -> tuple[str, int]:
    try:
        # the raw bytes, as signed: never a re-serialized request.json
        event = parse(dict(request.headers), request.get_data(), api_key=API_KEY)
    except InvalidSignature:
        return "invalid signature", 401
    if not event.id:
        return "no webhook-id header", 400
    if not remember(event):  # webhook-id is the event id, the same on every retry
        app.logger.info("already received %s %s", event.type, event.id)
        return "OK (already received)", 200
    app.logger.info("received %s %s", event.type, event.id)
    return "OK", 200
