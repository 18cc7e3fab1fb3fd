"""The billing context as an internal helpdesk note: plain text and simple HTML.

Built from the snapshot stored with the ticket message, so the note shows
what was true when the customer wrote. Amounts come from integer minor
units through :class:`billbox.money.Money` (``49.00 EUR``), never floats.
"""

from __future__ import annotations

from html import escape
from typing import Any

from billbox.money import Money
from mailbridge.helpdesks.external import BillingNote

SHOWN = 5


def _money(amount: Any, currency: Any) -> str:
    if not isinstance(amount, int) or not isinstance(currency, str) or not currency:
        return ""
    return str(Money(amount, currency))


def billing_note(context: dict[str, Any], *, panel_url: str | None = None) -> BillingNote | None:
    """The note for ``context`` (a :func:`billbox.billing_context.snapshot`), or None if empty."""
    customer = context.get("customer")
    if not customer:
        return None
    lines = [
        f"Billing context for {customer.get('name') or customer.get('email')} "
        f"<{customer.get('email')}>"
    ]
    lifetime = context.get("lifetime_value") or {}
    if lifetime:
        lines.append("Lifetime value: " + ", ".join(_money(v, c) for c, v in lifetime.items()))
    payments = context.get("payments") or []
    if payments:
        lines.append("Recent payments:")
        for p in payments[:SHOWN]:
            refunded = (
                f", refunded {_money(p.get('amount_refunded'), p.get('currency'))}"
                if p.get("amount_refunded")
                else ""
            )
            lines.append(
                f"- {(p.get('created_at') or '')[:10]} {_money(p.get('amount'), p.get('currency'))}"
                f" {p.get('status')} ({p.get('gateway')} {p.get('external_id')}){refunded}"
            )
    subscriptions = context.get("subscriptions") or []
    if subscriptions:
        lines.append("Subscriptions:")
        for s in subscriptions[:SHOWN]:
            ends = " (cancels at period end)" if s.get("cancel_at_period_end") else ""
            lines.append(
                f"- {s.get('plan')} {_money(s.get('amount'), s.get('currency'))}/"
                f"{s.get('interval')} {s.get('status')}{ends}"
            )
    invoices = context.get("open_invoices") or []
    if invoices:
        lines.append("Open invoices:")
        for i in invoices[:SHOWN]:
            due = _money(i.get("amount_due"), i.get("currency"))
            lines.append(f"- {i.get('number') or i.get('external_id')} {due} due {i.get('due_at')}")
    bounced = context.get("bounced_addresses") or []
    if bounced:
        lines.append("Bounced addresses: " + ", ".join(bounced))
    if panel_url:
        lines.append(f"Billing panel: {panel_url}")
    text = "\n".join(lines)
    html_lines = []
    for line in lines:
        if line.startswith("- "):
            html_lines.append(f"<li>{escape(line[2:])}</li>")
        else:
            html_lines.append(f"<p>{escape(line)}</p>")
    html = (
        "".join(html_lines).replace("</p><li>", "</p><ul><li>").replace("</li><p>", "</li></ul><p>")
    )
    if html.endswith("</li>"):
        html += "</ul>"
    return BillingNote(text=text, html=html)
