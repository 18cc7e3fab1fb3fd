"""The read endpoints of ``/api/v1`` and the OpenAPI document describing them."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlmodel import col, select

from billbox.billing_context import snapshot
from billbox.customers import find_by_email, normalise_email
from billbox.models import Customer, Role, Ticket, TicketMessage, TicketStatus
from web.admin.inbox import PAGE_SIZE, TicketFilters, list_tickets
from web.api import bp, error, require_role
from web.api.openapi import document
from web.app import services

READERS = (Role.ADMIN, Role.AGENT, Role.FINANCE)


def _ticket_json(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "brand_id": ticket.brand_id,
        "customer_id": ticket.customer_id,
        "requester_email": ticket.requester_email,
        "unverified_sender": ticket.unverified_sender,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(document())


@bp.get("/context")
def context() -> Any:
    """The billing context of the customer with this email address (a helpdesk sidebar)."""
    if (refused := require_role(*READERS)) is not None:
        return refused
    address = normalise_email(request.args.get("email", ""))
    if address is None:
        return error(400, "bad_request", "give ?email= with a valid email address")
    with services().factory() as db:
        customer = find_by_email(db, address)
        if customer is None or customer.id is None:
            return error(404, "not_found", f"no customer with email {address}")
        return jsonify(snapshot(db, customer.id))


@bp.get("/customers/<int:customer_id>")
def customer(customer_id: int) -> Any:
    if (refused := require_role(*READERS)) is not None:
        return refused
    with services().factory() as db:
        if db.get(Customer, customer_id) is None:
            return error(404, "not_found", f"no customer {customer_id}")
        return jsonify(snapshot(db, customer_id))


@bp.get("/tickets")
def tickets() -> Any:
    if (refused := require_role(*READERS)) is not None:
        return refused
    status = request.args.get("status", "")
    if status and status not in TicketStatus._value2member_map_:
        return error(400, "bad_request", f"status must be one of {[s.value for s in TicketStatus]}")
    page = request.args.get("page", "1")
    filters = TicketFilters(
        status=TicketStatus(status) if status else None,
        query=request.args.get("q", "")[:200],
        page=int(page) if page.isdigit() and int(page) > 0 else 1,
    )
    with services().factory() as db:
        rows, total = list_tickets(db, filters)
    return jsonify(
        tickets=[_ticket_json(r.ticket) for r in rows],
        total=total,
        page=filters.page,
        page_size=PAGE_SIZE,
    )


@bp.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> Any:
    if (refused := require_role(*READERS)) is not None:
        return refused
    with services().factory() as db:
        found = db.get(Ticket, ticket_id)
        if found is None:
            return error(404, "not_found", f"no ticket {ticket_id}")
        messages = db.exec(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket_id)
            .order_by(col(TicketMessage.created_at), col(TicketMessage.id))
        ).all()
        body = _ticket_json(found)
        body["messages"] = [
            {
                "id": m.id,
                "direction": m.direction.value,
                "author": m.author,
                "body_text": m.body_text,
                "body_html": m.body_html,
                "thread_rule": m.thread_rule.value if m.thread_rule else None,
                "billing_context": m.billing_context,
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ]
        return jsonify(body)
