"""One-click agent actions on a gateway: audited, checked first, idempotent.

Every action takes the session factory (the gateway is called between two
transactions), the settings (gateway keys, ``BILLBOX_REFUND_LIMITS``), the
acting :class:`Actor`, a reason for the audit log and an idempotency key.
The same key always means the same action: a double click, a retry or a
request repeated after a crash acts once at the gateway, and the second
call returns the stored outcome (``ActionResult.replayed``).

Refusals are :class:`ActionError` subclasses whose message is written for
the agent: :class:`ActionRefused` (our checks; nothing was sent),
:class:`ActionDeclined` (the gateway said no; audited) and
:class:`ActionRetryable` (outcome unknown; retry with the same key).

Who may do what (``PERMISSIONS``): admins and agents may run every action;
finance may refund, capture, void and finalize invoices. Refunds are also
limited per role and currency by ``BILLBOX_REFUND_LIMITS``.
"""

from billbox.actions._billing import (
    add_tax_id,
    apply_coupon,
    cancel_subscription,
    create_subscription,
    finalize_invoice,
)
from billbox.actions._payments import capture, check_refund_limit, refund, void
from billbox.actions._types import (
    PERMISSIONS,
    ActionDeclined,
    ActionError,
    ActionRefused,
    ActionResult,
    ActionRetryable,
    Actor,
    new_idempotency_key,
)

__all__ = [
    "PERMISSIONS",
    "ActionDeclined",
    "ActionError",
    "ActionRefused",
    "ActionResult",
    "ActionRetryable",
    "Actor",
    "add_tax_id",
    "apply_coupon",
    "cancel_subscription",
    "capture",
    "check_refund_limit",
    "create_subscription",
    "finalize_invoice",
    "new_idempotency_key",
    "refund",
    "void",
]
