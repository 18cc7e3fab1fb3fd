"""localstripe plus the subscription discounts and invoice finalize Stripe documents (tests only).

Why this exists: localstripe 1.15.10 (the newest release on PyPI on
2026-11-25) keeps Coupon objects but refuses ``discounts`` on
``POST /v1/subscriptions`` (400 "Unexpected discounts") and on
``POST /v1/subscriptions/{id}`` (500), and has no
``POST /v1/invoices/{id}/finalize``. Our coupon and finalize actions need
both, so this script starts localstripe's own aiohttp app in its own
process (``python tests/localstripe_discounts_server.py --port N
--from-scratch``, started by
:func:`tests.localstripe_discounts.running_localstripe_with_discounts`)
after adding them. It works on localstripe's stored objects, so later
GETs, lists and the webhooks localstripe sends carry the result. Nothing
here is product code.

What it follows is Stripe's API reference for the version our SDK pins
(``stripe`` 16.1 sends ``Stripe-Version: 2026-10-28.endive``):

- Create / update a subscription: ``discounts`` is an array of
  ``{coupon: <id>}``; on update it replaces the subscription's discounts
  (an empty string clears them). ``promotion_code`` and ``discount``
  entries are not emulated (400 "Unexpected ..."), nor is the ``coupon``
  parameter that API version 2025-03-31.basil removed (our adapter does
  not send it).
- Subscription ``discounts``: a list of Discount ids, each an object when
  the request has ``expand[]=discounts``. There is no singular
  ``discount`` field in this version, so localstripe's old ``discount:
  null`` is left out of subscriptions and invoices.
- The Discount object: ``id`` ``di_…``, ``object`` "discount",
  ``source: {type: "coupon", coupon: <id>}`` (2025-09-30.clover replaced
  the embedded ``coupon``), ``customer``, ``subscription``, ``start``,
  ``end`` (``start`` plus ``duration_in_months`` for a ``repeating``
  coupon, else null), and null ``checkout_session``, ``customer_account``,
  ``invoice``, ``invoice_item``, ``promotion_code``, ``subscription_item``.
  Discounts cannot be fetched by id, as at Stripe.
- Invoices of a discounted subscription: ``discounts`` (ids) and
  ``total_discount_amounts: [{amount, discount}]``; ``total`` and
  ``amount_due`` are after the discount. ``percent_off`` is rounded half
  up to the minor unit and ``amount_off`` is capped at the subscription's
  lines. A ``once`` coupon discounts one invoice. Discounts together with
  tax rates are refused (500 "Not implemented"), as localstripe does for
  what it cannot compute.
- ``customer.subscription.updated`` (with ``previous_attributes``) is sent
  when an update changes the discounts; localstripe sends no update event
  otherwise, so neither does this.
- Errors have Stripe's shape: an unknown coupon is 400,
  ``type: invalid_request_error``, ``code: resource_missing``,
  ``param: discounts[0][coupon]``, ``message: "No such coupon: 'X'"``; an
  ``amount_off`` coupon in another currency than the subscription is 400
  with ``param`` (that wording is ours).
- Finalize an invoice: ``POST /v1/invoices/{id}/finalize`` (``auto_advance``
  kept) turns a draft into ``open`` (``paid`` at zero), sets
  ``status_transitions.finalized_at`` and a ``number``, and sends
  ``invoice.finalized``; a non-draft is refused with a 400. Every
  finalized invoice gets a number (``<customer prefix>-0001``), since
  Stripe numbers invoices when it finalizes them.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from localstripe import resources as ls
from localstripe import server
from localstripe.errors import UserError


def _add_months(ts: int, months: int) -> int:
    """``ts`` plus whole calendar months (day clamped to the month's end), in UTC."""
    at = datetime.fromtimestamp(ts, UTC)
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return int(at.replace(year=year, month=month, day=day).timestamp())


class Discount(ls.StripeObject):
    """A coupon applied to one subscription, kept in localstripe's store.

    A module-level class so localstripe can pickle its store (it saves the
    store on every write); exported whole only for ``expand[]=discounts``.
    """

    object = "discount"
    _id_prefix = "di_"

    def __init__(self, coupon: Any, customer: str, subscription: str) -> None:
        super().__init__()
        start = self.created
        del self.created, self.livemode  # not fields of Stripe's Discount object
        self.source = {"type": "coupon", "coupon": coupon.id}
        self.customer = customer
        self.subscription = subscription
        self.start = start
        self.end = (
            _add_months(start, coupon.duration_in_months)
            if coupon.duration == "repeating"
            else None
        )
        for field in (
            "checkout_session",
            "customer_account",
            "invoice",
            "invoice_item",
            "promotion_code",
            "subscription_item",
        ):
            setattr(self, field, None)
        self._coupon = coupon
        self._spent = False  # a ``once`` coupon discounts one invoice
        coupon.times_redeemed += 1

    def _applies_at(self, ts: int) -> bool:
        if self._coupon.duration == "once":
            return not self._spent
        return self.end is None or ts < self.end

    def _amount_off(self, base: int) -> int:
        if self._coupon.percent_off is not None:
            exact = Decimal(base) * Decimal(str(self._coupon.percent_off)) / 100
            return min(base, int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP)))
        return min(base, int(self._coupon.amount_off))


def install() -> None:
    """Add the behaviour described in the module docstring to the imported localstripe."""

    def missing_coupon(index: int, coupon_id: object) -> UserError:
        return UserError(
            400,
            f"No such coupon: '{coupon_id}'",
            {"code": "resource_missing", "param": f"discounts[{index}][coupon]"},
        )

    def coupons_from(discounts: Any) -> list[Any] | None:
        """The Coupon objects a ``discounts`` parameter names; None when it is absent."""
        if discounts is None:
            return None
        if discounts == "":
            return []
        if not isinstance(discounts, list):
            raise UserError(400, "Bad request", {"param": "discounts"})
        found = []
        for index, entry in enumerate(discounts):
            if not isinstance(entry, dict) or set(entry) != {"coupon"}:
                keys = ", ".join(entry) if isinstance(entry, dict) else "discounts"
                raise UserError(400, "Unexpected " + keys, {"param": f"discounts[{index}]"})
            coupon = ls.store.get("coupon:" + str(entry["coupon"]))
            if coupon is None:
                raise missing_coupon(index, entry["coupon"])
            found.append(coupon)
        return found

    def check_currency(coupons: list[Any], currency: str) -> None:
        for index, coupon in enumerate(coupons):
            if coupon.amount_off is not None and coupon.currency.lower() != currency.lower():
                raise UserError(
                    400,
                    f"The coupon {coupon.id} is in {coupon.currency}, the subscription in "
                    f"{currency}.",
                    {"param": f"discounts[{index}][coupon]"},
                )

    # Subscriptions ----------------------------------------------------------------

    sub_init = ls.Subscription.__init__
    sub_update = ls.Subscription._update
    sub_export = ls.Subscription._export

    def has_tax(kwargs: dict[str, Any]) -> bool:
        items = kwargs.get("items") or []
        return bool(
            kwargs.get("default_tax_rates")
            or kwargs.get("tax_percent")
            or any(isinstance(i, dict) and i.get("tax_rates") for i in items)
        )

    def init(self: Any, *args: Any, discounts: Any = None, **kwargs: Any) -> None:
        coupons = coupons_from(discounts) or []
        if coupons:
            if has_tax(kwargs):
                raise UserError(500, "Not implemented: discounts with tax rates")
            items = kwargs.get("items") or [{"plan": kwargs.get("plan")}]
            plan = ls.store.get("plan:" + str(items[0].get("plan")))
            if plan is not None:
                check_currency(coupons, plan.currency)
        self._discounts = []
        self._pending_coupons = coupons  # made Discounts once the subscription has its id
        sub_init(self, *args, **kwargs)

    def materialise(self: Any) -> list[Any]:
        """The subscription's Discounts, creating those asked for at creation on first use."""
        pending = getattr(self, "_pending_coupons", None)
        if pending:
            self._pending_coupons = []
            self._discounts = [Discount(c, self.customer, self.id) for c in pending]
        return list(getattr(self, "_discounts", []))

    def update(self: Any, discounts: Any = None, **data: Any) -> None:
        coupons = coupons_from(discounts)
        if coupons:
            if self.tax_percent or self.default_tax_rates or has_tax(data):
                raise UserError(500, "Not implemented: discounts with tax rates")
            check_currency(coupons, self.plan.currency)
        before = [d.id for d in materialise(self)]
        sub_update(self, **data)
        if coupons is None:
            return
        self._discounts = [Discount(c, self.customer, self.id) for c in coupons]
        if before or self._discounts:
            event = ls.Event("customer.subscription.updated", self)
            event.data["previous_attributes"] = {"discounts": before}
            ls.schedule_webhook(event)

    def export(self: Any, expand: Any = None) -> dict[str, Any]:
        paths = expand if isinstance(expand, list) else []
        wanted = "discounts" in paths
        rest = [p for p in paths if p != "discounts"] if isinstance(expand, list) else expand
        data = sub_export(self, expand=rest)
        data.pop("discount", None)
        data["discounts"] = [d._export() if wanted else d.id for d in materialise(self)]
        return data

    ls.Subscription.__init__ = init
    ls.Subscription._update = update
    ls.Subscription._export = export

    # Invoices -----------------------------------------------------------------------

    inv_init = ls.Invoice.__init__
    inv_export = ls.Invoice._export
    inv_finalize = ls.Invoice._finalize

    def inv_init_with_discounts(self: Any, *args: Any, **kwargs: Any) -> None:
        self._discounts = []
        sub = ls.store.get("subscription:" + str(kwargs.get("subscription")))
        if sub is not None:
            date = kwargs.get("date") or int(time.time())
            self._discounts = [d for d in materialise(sub) if d._applies_at(date)]
        inv_init(self, *args, **kwargs)
        if not kwargs.get("simulation") and not kwargs.get("upcoming"):
            for discount in self._discounts:
                if discount._coupon.duration == "once":
                    discount._spent = True

    def discount_amounts(self: Any) -> list[dict[str, Any]]:
        base = sum(
            line.amount for line in self.lines._list if getattr(line, "type", "") == "subscription"
        )
        out = []
        for discount in getattr(self, "_discounts", []):
            amount = discount._amount_off(base)
            base -= amount
            out.append({"amount": amount, "discount": discount.id})
        return out

    def total(self: Any) -> int:
        off = sum(d["amount"] for d in discount_amounts(self))
        return max(0, self.subtotal - off + self.tax - self.starting_balance)

    def inv_export_without_legacy(self: Any, expand: Any = None) -> dict[str, Any]:
        data = inv_export(self, expand=expand)
        data.pop("discount", None)
        return data

    def finalize_with_number(self: Any) -> None:
        inv_finalize(self)
        if getattr(self, "number", None) is None:
            numbered = [
                i
                for key, i in ls.store.items()
                if key.startswith("invoice:")
                and i.customer == self.customer
                and getattr(i, "number", None)
            ]
            self.number = f"{self.customer[4:12].upper()}-{len(numbered) + 1:04d}"

    ls.Invoice.__init__ = inv_init_with_discounts
    ls.Invoice.discounts = property(lambda self: [d.id for d in getattr(self, "_discounts", [])])
    ls.Invoice.total_discount_amounts = property(discount_amounts)
    ls.Invoice.total = property(total)
    ls.Invoice.number = None  # until finalized
    ls.Invoice._export = inv_export_without_legacy
    ls.Invoice._finalize = finalize_with_number

    def finalize(id: str, auto_advance: Any = None, **kwargs: Any) -> Any:
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        invoice = ls.Invoice._api_retrieve(id)
        if invoice.status != "draft":
            raise UserError(
                400,
                f"This invoice is already finalized ({invoice.status}); only a draft invoice "
                "can be finalized.",
            )
        invoice._finalize()
        invoice.auto_advance = ls.try_convert_to_bool(auto_advance)
        ls.schedule_webhook(ls.Event("invoice.finalized", invoice))
        return invoice

    url = "/v1/invoices/{id}/finalize"
    server.app.router.add_route("POST", url, server.api_extra(finalize, url))


if __name__ == "__main__":
    install()
    server.start()
