"""Listing Stripe objects page by page for ``billbox sync``.

Kept apart from :mod:`billbox.gateways.stripe` (which owns webhooks, fetches
and actions) so the listing rules live in one place; it is still part of
the Stripe adapter and reuses its mapping functions and error mapping.

Stripe lists are newest first and paged with ``starting_after=<last id>``;
the cursor we hand back is that id (prefixed for payments, see below), so a
sync that stops resumes with the page after the last one it committed.

``since``: Stripe's ``created[gte]`` filter is not offered by every
Stripe-compatible server (localstripe answers "Unexpected created"), and a
list is ordered newest first anyway, so the cutoff is applied here: objects
older than ``since`` are dropped and the first one seen ends the listing.
That costs at most one page more than the server-side filter.

Payments are two listings under one kind: PaymentIntents, then charges
that no PaymentIntent owns (payments made before PaymentIntents, 2019 and
earlier); the cursor says which (``pi:<id>``, ``ch:`` for the first charge
page, ``ch:<id>``).

``updated_at`` of every object is the moment the page was *requested*,
rounded down to the second, minus one second (:func:`listing_stamp`). The
ledger refuses data older than what it holds (``ledger._is_stale``) and
re-applies equal stamps. Stripe stamps events in whole seconds, so an event
for a change made during or after the request carries a stamp greater than
ours and wins whichever arrives first; a page whose data may predate a
stored event (stamped in the same second) loses to it. Data older than the
request can therefore never overwrite a newer webhook, while a sync that
runs after the last event (the usual backfill) applies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from billbox.gateways.base import GatewayParseError, NormalisedObject, ObjectKind, Page
from billbox.gateways.stripe_objects import (
    customer_from_object,
    invoice_from_object,
    payment_from_charge,
    payment_from_intent,
    refund_from_object,
    subscription_from_object,
)

if TYPE_CHECKING:  # the SDK is imported by billbox.gateways.stripe alone
    import stripe as stripe_sdk

Json = dict[str, Any]
Mapper = Callable[[Json, datetime], NormalisedObject]

#: Stripe's page size limit.
MAX_LIMIT = 100
PAYMENT_INTENTS = "pi:"
CHARGES = "ch:"


def listing_stamp(requested_at: datetime) -> datetime:
    """``updated_at`` for objects listed by a request made at ``requested_at`` (see module doc)."""
    return requested_at.replace(microsecond=0) - timedelta(seconds=1)


def list_page(
    client: stripe_sdk.StripeClient,
    kind: ObjectKind,
    cursor: str | None,
    *,
    since: datetime | None,
    limit: int,
    now: datetime,
) -> Page:
    """One page of ``kind`` after ``cursor``, normalised; SDK errors propagate to the caller.

    ``now`` is the request time, the caller's clock, so the stamp is taken
    *before* the request leaves.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    stamp = listing_stamp(now)
    v1 = client.v1
    if kind == ObjectKind.CUSTOMER:
        return _page(v1.customers.list, {}, cursor, since, limit, stamp, customer_from_object)
    if kind == ObjectKind.INVOICE:
        return _page(v1.invoices.list, {}, cursor, since, limit, stamp, invoice_from_object)
    if kind == ObjectKind.SUBSCRIPTION:
        params = {"status": "all"}  # canceled ones too; the default hides them
        return _page(
            v1.subscriptions.list, params, cursor, since, limit, stamp, subscription_from_object
        )
    if kind == ObjectKind.PAYMENT:
        return _payments(client, cursor, since, limit, stamp)
    if kind == ObjectKind.REFUND:
        return _page(v1.refunds.list, {}, cursor, since, limit, stamp, _refund)
    raise ValueError(f"unknown object kind {kind!r}")


def _refund(obj: Json, updated_at: datetime) -> NormalisedObject:
    return refund_from_object(obj, updated_at)


def _payments(
    client: stripe_sdk.StripeClient,
    cursor: str | None,
    since: datetime | None,
    limit: int,
    stamp: datetime,
) -> Page:
    if cursor is None or cursor.startswith(PAYMENT_INTENTS):
        after = cursor[len(PAYMENT_INTENTS) :] if cursor else None
        # The latest charge carries the card brand, last4 and refunded amount.
        params = {"expand": ["data.latest_charge"]}
        page = _page(
            client.v1.payment_intents.list,
            params,
            after,
            since,
            limit,
            stamp,
            payment_from_intent,
        )
        if page.next_cursor is not None:
            return Page(page.objects, PAYMENT_INTENTS + page.next_cursor)
        return Page(page.objects, CHARGES)  # intents done; charges next
    if not cursor.startswith(CHARGES):
        raise ValueError(f"not a Stripe payment cursor: {cursor!r}")
    after = cursor[len(CHARGES) :] or None

    def legacy_only(obj: Json, updated_at: datetime) -> NormalisedObject | None:
        if obj.get("payment_intent"):
            return None  # listed with its PaymentIntent
        return payment_from_charge(obj, updated_at)

    page = _page(client.v1.charges.list, {}, after, since, limit, stamp, legacy_only)
    return Page(page.objects, CHARGES + page.next_cursor if page.next_cursor else None)


def _page(
    list_fn: Callable[..., Any],
    params: Json,
    after: str | None,
    since: datetime | None,
    limit: int,
    stamp: datetime,
    mapper: Callable[[Json, datetime], NormalisedObject | None],
) -> Page:
    query: Json = {**params, "limit": limit}
    if after:
        query["starting_after"] = after
    listing = list_fn(params=query)
    raw = [item.to_dict() for item in listing.data]
    objects: list[NormalisedObject] = []
    reached_since = False
    for obj in raw:
        created = obj.get("created")
        if since is not None and isinstance(created, int) and created < since.timestamp():
            reached_since = True  # newest first: everything after this is older too
            break
        try:
            mapped = mapper(obj, stamp)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = f"{obj.get('object', 'object')} {obj.get('id', '?')}"
            raise GatewayParseError(f"stripe: cannot read {what}: {exc}") from exc
        if mapped is not None:
            objects.append(mapped)
    more = bool(listing.has_more) and bool(raw) and not reached_since
    next_cursor = str(raw[-1]["id"]) if more else None
    return Page(objects, next_cursor)
