"""The engine every action runs on: permission, checks, a row per key, gateway call, apply.

An action is three steps around one gateway call, which must happen
*between* transactions (a network call inside a transaction would hold
locks for seconds and, on SQLite, block every other writer):

1. Transaction 1: a repeated key returns the stored outcome at once. A new
   key runs the checks against the ledger (refused → :class:`ActionRefused`
   and a ``<action>.refused`` audit event; nothing is sent) and inserts a
   ``pending`` :class:`~billbox.models.GatewayAction` row holding the exact
   request, then commits.
2. The adapter is called with the row's request and the same idempotency
   key. A ``pending`` row found later repeats this call with the same key
   and the same parameters, and the gateway's idempotency answers with the
   first result; at most one attempt per row is in flight at a time (see
   :func:`_claim`), so simultaneous clicks reach the gateway once even
   where it does not honour idempotency keys (localstripe).
3. Transaction 2: the gateway's answer is applied through the ledger, the
   row becomes ``succeeded`` and the audit event is written, all or nothing.

A refusal by the gateway marks the row ``failed`` and audits the attempt
(:class:`ActionDeclined`); an unreachable gateway leaves the row
``pending`` (:class:`ActionRetryable`): retrying with the same key is safe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from billbox import audit
from billbox.actions._types import (
    PERMISSIONS,
    ActionDeclined,
    ActionError,
    ActionRefused,
    ActionResult,
    ActionRetryable,
    Actor,
    Factory,
    Plan,
    Spec,
    gateway_name,
    result_of,
)
from billbox.errors import LedgerError
from billbox.gateways.base import (
    GatewayDeclined,
    GatewayError,
    GatewayUnavailable,
    NormalisedObject,
    UnsupportedAction,
)
from billbox.gateways.registry import adapter_for
from billbox.models import ActionState, GatewayAccount, GatewayAction, utcnow
from billbox.settings import Settings
from billbox.webhooks import apply_objects

#: How long an attempt may be in flight before its row counts as abandoned by a dead
#: process; longer than the Stripe SDK's worst case (10 s timeout, 2 retries).
ATTEMPT_LEASE = timedelta(seconds=90)

_KEY = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")


def run(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    spec: Spec,
    *,
    target_ref: str,
    args: Mapping[str, object],
    reason: str,
    idempotency_key: str,
    prepare: Callable[[Session], Plan],
) -> ActionResult:
    """Run one action through the three steps above; see the module docstring.

    ``target_ref`` names the ledger object (``payment:12``) and ``args`` the
    caller's other arguments (amount, currency, …) so a key reused
    for a different action or object is refused instead of replaying the
    wrong outcome. ``prepare`` loads the ledger rows and raises
    :class:`ActionRefused` when a check fails.
    """
    reason = reason.strip()
    ref = {"target_ref": target_ref, "args": json.loads(json.dumps(dict(args), sort_keys=True))}
    if not _KEY.match(idempotency_key):
        raise ActionRefused(
            "The idempotency key must be 8-128 letters, digits or . _ : - characters."
        )
    if spec.name not in PERMISSIONS.get(actor.role, frozenset()):
        _refused(factory, actor, spec, target_ref, reason, f"role {actor.role.value} may not")
        raise ActionRefused(
            f"{spec.label}: the {actor.role.value} role may not do this; ask an admin."
        )
    if not reason:
        raise ActionRefused(f"{spec.label}: give a reason; it is kept in the audit log.")

    with factory() as session:
        row = _find(session, idempotency_key)
        if row is None:
            try:
                plan = prepare(session)
                adapter = adapter_for(plan.account, settings)
                if spec.capability not in adapter.capabilities:
                    raise UnsupportedAction(
                        f"{gateway_name(plan.account)} does not support this action"
                    )
            except (ActionRefused, UnsupportedAction) as exc:
                session.rollback()
                _refused(factory, actor, spec, target_ref, reason, str(exc))
                if isinstance(exc, ActionRefused):
                    raise
                raise ActionRefused(f"{spec.label}: {exc}") from exc
            row, owned = _insert(session, actor, spec, plan, ref, reason, idempotency_key)
        else:
            _same_request(row, spec, ref)
            adapter, owned = None, False
        if row.state == ActionState.SUCCEEDED:
            return result_of(row, spec, replayed=True)
        if row.state == ActionState.FAILED:
            raise ActionDeclined(
                f"{spec.label} was already refused with this key: {row.error}",
                action_id=row.id,
            )
        if not owned and not _claim(session, row):
            raise ActionRetryable(
                f"{spec.label} with this idempotency key is already in progress; look again in "
                "a few seconds (repeating it with the same key is safe).",
                action_id=row.id,
            )
        account = session.get(GatewayAccount, row.account_id)
        assert account is not None and row.id is not None
        action_id, request = row.id, dict(row.request)
        session.commit()  # end transaction 1 before the network call (commit keeps rows loaded)

    try:
        adapter = adapter or adapter_for(account, settings)
        answer = spec.call(adapter, request, idempotency_key)
    except (GatewayDeclined, UnsupportedAction) as exc:
        _fail(factory, actor, spec, action_id, account, exc)
        raise ActionDeclined(
            f"{spec.label} refused by {gateway_name(account)}: {exc}",
            action_id=action_id,
            code=getattr(exc, "code", ""),
            request_id=getattr(exc, "request_id", ""),
        ) from exc
    except GatewayError as exc:
        _release(factory, action_id)
        retry_after = exc.retry_after if isinstance(exc, GatewayUnavailable) else None
        raise ActionRetryable(
            f"{spec.label}: {gateway_name(account)} could not be reached or did not answer clearly "
            f"({exc}). Nothing is recorded as done; try again with the same request "
            "(idempotency key) and the gateway will act at most once.",
            action_id=action_id,
            retry_after=retry_after,
        ) from exc
    try:
        return _succeed(factory, actor, spec, action_id, account, answer)
    except (LedgerError, ValueError) as exc:
        _release(factory, action_id)
        raise ActionError(
            f"{spec.label} was done by {gateway_name(account)} ({answer.external_id}), but Billbox "
            f"could not record its answer ({exc}); the gateway's webhook or a sync will bring "
            "the ledger up to date. Do not repeat the action with a new key.",
            action_id=action_id,
        ) from exc


def _find(session: Session, key: str, *, lock: bool = False) -> GatewayAction | None:
    statement = select(GatewayAction).where(GatewayAction.idempotency_key == key)
    if lock:
        statement = statement.with_for_update()
    return session.exec(statement).first()


def _same_request(row: GatewayAction, spec: Spec, ref: Mapping[str, object]) -> None:
    """Refuse a key reused for another action, object or arguments (as Stripe does)."""
    stored = {"target_ref": row.request.get("target_ref"), "args": row.request.get("args")}
    if row.action != spec.name or stored != dict(ref):
        raise ActionRefused(
            f"This idempotency key was already used for another request ({row.action} of "
            f"{stored['target_ref']} with {stored['args']}); use a new key for a new action."
        )


def _insert(
    session: Session,
    actor: Actor,
    spec: Spec,
    plan: Plan,
    ref: Mapping[str, object],
    reason: str,
    key: str,
) -> tuple[GatewayAction, bool]:
    """Insert the pending row; ``(row, True)``, or the row a concurrent click inserted first."""
    assert plan.account.id is not None
    row = GatewayAction(
        idempotency_key=key,
        account_id=plan.account.id,
        action=spec.name,
        target_kind=plan.target_kind,
        target_external_id=plan.target_external_id,
        actor=actor.email,
        reason=reason,
        amount=plan.amount,
        currency=plan.currency,
        state=ActionState.PENDING,
        request={**plan.request, **ref, "actor_kind": actor.kind.value},
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # a concurrent click with the same key inserted first
        session.rollback()
        existing = _find(session, key)
        assert existing is not None
        _same_request(existing, spec, ref)
        return existing, False
    return row, True


def _claim(session: Session, row: GatewayAction) -> bool:
    """Whether this caller may (re)send a pending action; at most one attempt runs at a time.

    A pending row's ``finished_at`` is when its last attempt ended without
    an answer (gateway unreachable): the first caller to clear it owns the
    next attempt, so simultaneous clicks never both reach the gateway. With
    ``finished_at`` unset an attempt is in flight, unless the row is older
    than :data:`ATTEMPT_LEASE` (the process died mid-call): then the call is
    repeated with the same key and the gateway's idempotency answers it.
    """
    if row.finished_at is None:
        return utcnow() - row.created_at > ATTEMPT_LEASE
    claimed = session.execute(
        sa_update(GatewayAction)
        .where(
            col(GatewayAction.id) == row.id,
            col(GatewayAction.state) == ActionState.PENDING,
            col(GatewayAction.finished_at).is_not(None),
        )
        .values(finished_at=None)
    )
    session.commit()
    return bool(getattr(claimed, "rowcount", 0) == 1)


def _release(factory: Factory, action_id: int) -> None:
    """Mark the attempt as over (row still pending) so the next click may try again at once."""
    with factory() as session:
        session.execute(
            sa_update(GatewayAction)
            .where(
                col(GatewayAction.id) == action_id,
                col(GatewayAction.state) == ActionState.PENDING,
            )
            .values(finished_at=utcnow())
        )
        session.commit()


#: Request arguments worth reading in the audit log (which coupon, plan, tax id, when).
_AUDITED_ARGUMENTS = ("coupon", "price", "at_period_end", "scheme", "value", "country", "send")


def _audit_data(row: GatewayAction, account: GatewayAccount, **more: object) -> dict[str, object]:
    arguments = {k: row.request[k] for k in _AUDITED_ARGUMENTS if row.request.get(k) is not None}
    if arguments:
        more = {"arguments": arguments, **more}
    return {
        "gateway": account.gateway.value,
        "account_id": row.account_id,
        "action_id": row.id,
        "idempotency_key": row.idempotency_key,
        "amount": row.amount,
        "currency": row.currency,
        "target_ref": row.request.get("target_ref"),
        **more,
    }


def _succeed(
    factory: Factory,
    actor: Actor,
    spec: Spec,
    action_id: int,
    account: GatewayAccount,
    answer: NormalisedObject,
) -> ActionResult:
    with factory() as session:
        row = session.get(GatewayAction, action_id, with_for_update=True)
        assert row is not None
        if row.state == ActionState.SUCCEEDED:  # a concurrent click finished first
            return result_of(row, spec, replayed=True)
        account = session.merge(account)
        apply_objects(session, account, [answer])
        if spec.after_apply is not None:
            spec.after_apply(session, account, dict(row.request), answer)
        row.state = ActionState.SUCCEEDED
        row.response_id = answer.external_id[:128]
        row.error = None
        row.finished_at = utcnow()
        session.add(row)
        audit.record(
            session,
            actor_kind=actor.kind,
            actor=actor.email,
            action=spec.name,
            target_kind=row.target_kind,
            target_id=row.target_external_id,
            reason=row.reason,
            data=_audit_data(row, account, response_id=row.response_id, state="succeeded"),
        )
        session.commit()
        return result_of(row, spec, replayed=False)


def _fail(
    factory: Factory,
    actor: Actor,
    spec: Spec,
    action_id: int,
    account: GatewayAccount,
    exc: GatewayError,
) -> None:
    with factory() as session:
        row = session.get(GatewayAction, action_id, with_for_update=True)
        assert row is not None
        if row.state != ActionState.PENDING:
            session.rollback()
            return
        row.state = ActionState.FAILED
        row.error = str(exc)[:2000]
        row.finished_at = utcnow()
        session.add(row)
        audit.record(
            session,
            actor_kind=actor.kind,
            actor=actor.email,
            action=f"{spec.name}.failed",
            target_kind=row.target_kind,
            target_id=row.target_external_id,
            reason=row.reason,
            data=_audit_data(
                row,
                account,
                error=str(exc),
                code=getattr(exc, "code", ""),
                request_id=getattr(exc, "request_id", ""),
                state="failed",
            ),
        )
        session.commit()


def _refused(
    factory: Factory, actor: Actor, spec: Spec, target_ref: str, reason: str, why: str
) -> None:
    """Audit a refused attempt (its own transaction: nothing else is written)."""
    with factory() as session:
        audit.record(
            session,
            actor_kind=actor.kind,
            actor=actor.email,
            action=f"{spec.name}.refused",
            target_kind=target_ref.partition(":")[0],
            target_id=target_ref.partition(":")[2],
            reason=reason,
            data={"refused": why, "role": actor.role.value},
        )
        session.commit()
