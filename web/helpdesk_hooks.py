"""``POST /webhooks/helpdesk/<name>``: a ticket was opened in the helpdesk; add the billing note.

The delivery must prove itself (see ``mailbridge.helpdesks.inbound_hooks``);
otherwise 401 and nothing is queued. A good one queues ``helpdesk.note`` once
per ticket (a redelivery is a no-op) and is answered 200 at once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from billbox.jobs import submit
from billbox.sealed import SealedError
from mailbridge.helpdesks.accounts import credentials
from mailbridge.helpdesks.external import HelpdeskAuthError, HelpdeskError
from mailbridge.helpdesks.inbound_hooks import read_ticket, verify
from mailbridge.helpdesks.push import NOTE_JOB
from web.app import services
from web.sidebar import account_named

bp = Blueprint("helpdesk_hooks", __name__)
MAX_BODY = 512 * 1024


@bp.post("/webhooks/helpdesk/<name>")
def helpdesk_webhook(name: str) -> Any:
    account = account_named(name)
    if account is None or not account.active:
        return jsonify(error="unknown or inactive helpdesk"), 404
    body = request.get_data(cache=False)[: MAX_BODY + 1]
    if len(body) > MAX_BODY:
        return jsonify(error="body too large"), 400
    headers = dict(request.headers)
    try:
        secret = str(credentials(account, services().settings.secret()).get("webhook_secret", ""))
        verify(account.kind, secret, headers, body)
    except (HelpdeskAuthError, SealedError) as exc:
        return jsonify(error=str(exc)), 401
    challenge = request.headers.get("X-Front-Challenge")
    if challenge:  # Front validates a new subscription by asking us to echo this
        return jsonify(challenge=challenge)
    try:
        opened = read_ticket(account.kind, body)
    except HelpdeskError as exc:
        return jsonify(error=str(exc)), 400
    if opened is None:
        return jsonify(status="ignored")
    with services().factory() as db:
        submit(
            db,
            NOTE_JOB,
            {"account_id": account.id, "ticket_id": opened.ticket_id, "email": opened.email},
            dedupe_key=f"{NOTE_JOB}:{account.id}:{opened.ticket_id}",
        )
        db.commit()
    return jsonify(status="queued")
