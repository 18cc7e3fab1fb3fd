"""A subscription's discounts reach the ledger's plan name, whatever the API version's shape.

The subscription is stripe-mock's current-spec example from the shared
corpus (when present) or a minimal one; the discounts are the shapes
Stripe's reference documents: ``discounts`` expanded (``source.coupon``
since 2025-09-30.clover, embedded ``coupon`` before), ``discounts`` as
bare ids (events, unexpanded answers), and the single ``discount`` of
versions before 2025-03-31.basil, here dj-stripe's recorded 2018 object.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billbox.gateways.stripe_objects import subscription_from_object

#: The shared corpus sits beside the checkout (``../shared``), one level further up
#: for a git worktree kept in a subfolder.
CORPUS = next(
    (
        up / "shared" / "corpora"
        for up in Path(__file__).resolve().parents[1:4]
        if (up / "shared" / "corpora").is_dir()
    ),
    Path("/nonexistent"),
)
STRIPE = CORPUS / "payment_webhooks" / "stripe"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
END = 1_803_588_908  # 2027-02-25


def _subscription(**fields: Any) -> dict[str, Any]:
    fixtures = STRIPE / "openapi" / "fixtures3.json"
    if fixtures.exists():
        obj = copy.deepcopy(json.loads(fixtures.read_text())["resources"]["subscription"])
    else:
        obj = {
            "id": "sub_example",
            "object": "subscription",
            "status": "active",
            "customer": "cus_example",
            "items": {"data": [{"price": {"id": "price_x", "currency": "usd"}, "quantity": 1}]},
            "discounts": [],
        }
    price = obj["items"]["data"][0]["price"]
    price.update({"nickname": "Pro monthly", "unit_amount": 1500, "currency": "eur"})
    obj.update(fields)
    return obj


def _recorded_2018_discount() -> dict[str, Any]:
    """dj-stripe's customer.discount.created object: coupon embedded, 1 % off, once."""
    path = STRIPE / "dj_stripe" / "events_from_tests_init"
    path = path / "FAKE_EVENT_CUSTOMER_DISCOUNT_CREATED.json"
    if not path.exists():
        pytest.skip("the shared Stripe corpus is not here")
    return dict(json.loads(path.read_text())["data"]["object"])


def _current(coupon: Any, end: int | None = None) -> dict[str, Any]:
    return {
        "id": "di_1",
        "object": "discount",
        "source": {"type": "coupon", "coupon": coupon},
        "customer": "cus_example",
        "subscription": "sub_example",
        "start": END - 90 * 86400,
        "end": end,
        "checkout_session": None,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
    }


def _plan_name(**fields: Any) -> str:
    return subscription_from_object(_subscription(**fields), NOW).plan_name


def test_no_discount_leaves_the_plan_name_alone():
    assert _plan_name(discounts=[]) == "Pro monthly"
    assert _plan_name(discounts=[], discount=None) == "Pro monthly"


def test_current_shape_names_the_coupon_and_when_the_discount_ends():
    assert _plan_name(discounts=[_current("TENOFF")]) == "Pro monthly (coupon TENOFF)"
    assert _plan_name(discounts=[_current("FIVE", END)]) == (
        "Pro monthly (coupon FIVE until 2027-02-25)"
    )


def test_an_expanded_coupon_adds_its_terms_in_exact_money():
    percent = {"id": "HALF", "object": "coupon", "percent_off": 12.5, "duration": "forever"}
    amount = {"id": "FIVE", "object": "coupon", "amount_off": 500, "currency": "eur"}
    yen = {"id": "Y", "object": "coupon", "amount_off": 500, "currency": "jpy"}
    assert _plan_name(discounts=[_current(percent)]) == "Pro monthly (coupon HALF: 12.5% off)"
    assert _plan_name(discounts=[_current(amount)]) == "Pro monthly (coupon FIVE: 5.00 EUR off)"
    assert _plan_name(discounts=[_current(yen)]) == "Pro monthly (coupon Y: 500 JPY off)"


def test_the_shapes_before_clover_and_before_basil_name_the_coupon_too():
    recorded = _recorded_2018_discount()
    expected = "Pro monthly (coupon fake-coupon-1: 1% off)"
    assert _plan_name(discounts=[recorded]) == expected  # 2024-2025: embedded coupon
    assert _plan_name(discounts=[], discount=recorded) == expected  # before 2025-03-31
    legacy = _subscription(discount=recorded)
    del legacy["discounts"]  # before 2024 subscriptions had no discounts list
    assert subscription_from_object(legacy, NOW).plan_name == expected


def test_bare_discount_ids_say_only_that_there_is_a_discount():
    assert _plan_name(discounts=["di_1"]) == "Pro monthly (discounted)"
    assert _plan_name(discounts=[_current("A"), _current("B"), "di_3"]) == (
        "Pro monthly (coupons A, B and 1 more discount)"
    )


def test_a_long_plan_name_is_cut_so_the_coupon_still_fits():
    long_plan = _subscription(discounts=[_current("TENOFF")])
    long_plan["items"]["data"][0]["price"]["nickname"] = "P" * 300
    cut = subscription_from_object(long_plan, NOW).plan_name
    assert len(cut) == 200 and cut.endswith("P (coupon TENOFF)")
    assert subscription_from_object(long_plan, NOW).amount == 1500  # the price before discounts
