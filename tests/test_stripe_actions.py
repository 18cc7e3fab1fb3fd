"""Stripe errors become our errors by what they mean for an action: refused, or unknown.

No network: the SDK's own exception classes, built as the SDK builds them
from a response (status, headers, error code), go through the mapping.
"""

from __future__ import annotations

import pytest
import stripe

from billbox.gateways.base import Capability, GatewayDeclined, GatewayUnavailable, UnsupportedAction
from billbox.gateways.stripe import StripeGateway
from billbox.gateways.stripe_actions import mapped_action_errors


def _raise(exc: Exception) -> None:
    with mapped_action_errors():
        raise exc


def test_a_rate_limit_is_retryable_after_the_seconds_stripe_asked_for():
    error = stripe.RateLimitError(
        "Too many requests", http_status=429, headers={"retry-after": "7", "request-id": "req_9"}
    )
    with pytest.raises(GatewayUnavailable) as info:
        _raise(error)
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    "error",
    [
        stripe.APIConnectionError("Connection refused"),
        stripe.APIError("Internal error", http_status=500),
        stripe.IdempotencyError(
            "Keys for idempotent requests can only be used ...", http_status=409
        ),
    ],
)
def test_errors_that_leave_the_outcome_unknown_are_retryable(error):
    """A connection failure, a 5xx or a concurrent use of the key: retry with the same key."""
    with pytest.raises(GatewayUnavailable) as info:
        _raise(error)
    assert info.value.retry_after is None


def test_a_card_or_request_error_is_a_refusal_with_stripe_s_code_and_request_id():
    card = stripe.CardError(
        "Your card was declined.", "card", "card_declined", headers={"request-id": "req_1"}
    )
    with pytest.raises(GatewayDeclined) as info:
        _raise(card)
    assert (str(info.value), info.value.code, info.value.request_id) == (
        "Your card was declined.",
        "card_declined",
        "req_1",
    )
    invalid = stripe.InvalidRequestError(
        "Charge ch_1 has already been refunded.", "charge", code="charge_already_refunded"
    )
    with pytest.raises(GatewayDeclined) as info:
        _raise(invalid)
    assert info.value.code == "charge_already_refunded"


def test_a_rejected_api_key_is_a_refusal_not_a_retry():
    with pytest.raises(GatewayDeclined, match="refused our API key"):
        _raise(stripe.AuthenticationError("Invalid API Key provided", http_status=401))


def test_the_adapter_lists_its_actions_and_has_no_customer_wide_coupon():
    adapter = StripeGateway(api_key="sk_test_offline", api_base="http://127.0.0.1:9")
    assert {Capability.REFUND, Capability.CAPTURE, Capability.ADD_TAX_ID} <= adapter.capabilities
    with pytest.raises(UnsupportedAction, match="choose one of the customer's subscriptions"):
        adapter.apply_coupon(
            "cus_1", "TENOFF", subscription_external_id=None, idempotency_key="k-000001"
        )
