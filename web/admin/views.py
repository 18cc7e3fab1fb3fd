"""Inbox routes: the ticket list, one ticket with its billing panel, notes and status."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from sqlmodel import col, select

from billbox.models import (
    Brand,
    InboundMessage,
    MessageDirection,
    Role,
    Ticket,
    TicketMessage,
    TicketStatus,
    utcnow,
)
from mailbridge.agent_reply import ReplyError, queue_agent_reply
from mailbridge.attachments import Attachment, attachment, list_attachments
from web.admin import bp
from web.admin.inbox import PAGE_SIZE, TicketFilters, list_tickets
from web.admin.panel import billing_panel
from web.app import services
from web.auth import current_user, require_roles

STAFF = (Role.ADMIN, Role.AGENT, Role.FINANCE)
ACTORS = (Role.ADMIN, Role.AGENT)
MAX_NOTE = 20_000


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else None


def _filters() -> TicketFilters:
    status = request.args.get("status", "")
    return TicketFilters(
        status=TicketStatus(status) if status in TicketStatus._value2member_map_ else None,
        brand_id=_int_arg("brand"),
        gateway=request.args.get("gateway") or None,
        bounced=request.args.get("bounced") == "1",
        unverified=request.args.get("unverified") == "1",
        query=request.args.get("q", "")[:200],
        page=_int_arg("page") or 1,
    )


@bp.get("/")
@require_roles(*STAFF)
def tickets() -> Any:
    filters = _filters()
    with services().factory() as db:
        rows, total = list_tickets(db, filters)
        brands = list(db.exec(select(Brand).order_by(col(Brand.name))))
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template(
        "admin/tickets.html",
        rows=rows,
        total=total,
        filters=filters,
        brands=brands,
        statuses=list(TicketStatus),
        page=filters.page,
        pages=pages,
        user=current_user(),
    )


@bp.get("/tickets/<int:ticket_id>")
@require_roles(*STAFF)
def ticket(ticket_id: int) -> Any:
    with services().factory() as db:
        found = db.get(Ticket, ticket_id)
        if found is None:
            abort(404)
        messages = list(
            db.exec(
                select(TicketMessage)
                .where(TicketMessage.ticket_id == ticket_id)
                .order_by(col(TicketMessage.created_at), col(TicketMessage.id))
            )
        )
        files: dict[int, list[Attachment]] = {}
        for m in messages:
            if m.inbound_message_id is not None and m.id is not None:
                inbound = db.get(InboundMessage, m.inbound_message_id)
                if inbound is not None:
                    files[m.id] = list_attachments(inbound.raw)
        panel = billing_panel(db, found.customer_id)
        brand = db.get(Brand, found.brand_id) if found.brand_id else None
        return render_template(
            "admin/ticket.html",
            ticket=found,
            messages=messages,
            attachments=files,
            panel=panel,
            brand=brand,
            statuses=list(TicketStatus),
            user=current_user(),
            can_act=(user := current_user()) is not None and user.role in ACTORS,
        )


@bp.post("/tickets/<int:ticket_id>/notes")
@require_roles(*STAFF)
def add_note(ticket_id: int) -> Any:
    text = request.form.get("body", "").strip()
    if not text:
        abort(400, description="A note needs some text.")
    user = current_user()
    assert user is not None
    with services().factory() as db:
        found = db.get(Ticket, ticket_id)
        if found is None:
            abort(404)
        db.add(
            TicketMessage(
                ticket_id=ticket_id,
                direction=MessageDirection.NOTE,
                author=user.email,
                body_text=text[:MAX_NOTE],
            )
        )
        found.updated_at = utcnow()
        db.add(found)
        db.commit()
    return redirect(url_for("admin.ticket", ticket_id=ticket_id) + "#end")


@bp.post("/tickets/<int:ticket_id>/reply")
@require_roles(*ACTORS)
def reply(ticket_id: int) -> Any:
    """Email the customer from the ticket; the ticket then waits for them (pending)."""
    user = current_user()
    assert user is not None
    settings = services().settings
    with services().factory() as db:
        found = db.get(Ticket, ticket_id)
        if found is None:
            abort(404)
        try:
            queue_agent_reply(
                db, found, author=user.email, text=request.form.get("body", ""),
                secret=settings.secret(), reply_domain=settings.reply_domain,
            )  # fmt: skip
        except ReplyError as exc:
            db.rollback()
            flash(str(exc), "error")
            return redirect(url_for("admin.ticket", ticket_id=ticket_id) + "#end")
        found.status = TicketStatus.PENDING
        db.add(found)
        db.commit()
    flash("Reply queued for sending.", "ok")
    return redirect(url_for("admin.ticket", ticket_id=ticket_id) + "#end")


@bp.post("/tickets/<int:ticket_id>/status")
@require_roles(*ACTORS)
def set_status(ticket_id: int) -> Any:
    value = request.form.get("status", "")
    if value not in TicketStatus._value2member_map_:
        abort(400, description=f"Unknown status {value!r}.")
    with services().factory() as db:
        found = db.get(Ticket, ticket_id)
        if found is None:
            abort(404)
        found.status = TicketStatus(value)
        found.updated_at = utcnow()
        db.add(found)
        db.commit()
    return redirect(url_for("admin.ticket", ticket_id=ticket_id))


@bp.get("/messages/<int:message_id>/attachments/<int:index>")
@require_roles(*STAFF)
def download_attachment(message_id: int, index: int) -> Any:
    """Always a download, never rendered in our origin (an HTML file could script it)."""
    with services().factory() as db:
        message = db.get(TicketMessage, message_id)
        inbound = (
            db.get(InboundMessage, message.inbound_message_id)
            if message is not None and message.inbound_message_id is not None
            else None
        )
        if inbound is None:
            abort(404)
        found = attachment(inbound.raw, index)
    if found is None:
        abort(404)
    meta, data = found
    response = Response(data, mimetype="application/octet-stream")
    response.headers.set("Content-Disposition", "attachment", filename=meta.filename)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
