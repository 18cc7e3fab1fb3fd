"""Sealed credentials: round trip, purpose separation, tamper and key-change detection."""

from __future__ import annotations

import pytest

from billbox.sealed import SealedError, seal, unseal

SECRET = "sealed-test-secret-0123456789"


def test_a_sealed_value_opens_with_the_same_secret_and_purpose():
    token = seal(SECRET, "helpdesk", {"api_token": "zd-123", "email": "a@example.com"})
    assert "zd-123" not in token
    assert unseal(SECRET, "helpdesk", token) == {"api_token": "zd-123", "email": "a@example.com"}


@pytest.mark.parametrize(
    ("secret", "purpose"), [("another-secret-0123456789", "helpdesk"), (SECRET, "gateway")]
)
def test_another_secret_or_purpose_cannot_open_it(secret, purpose):
    token = seal(SECRET, "helpdesk", {"k": "v"})
    with pytest.raises(SealedError, match="enter them again"):
        unseal(secret, purpose, token)


def test_a_tampered_value_is_refused():
    token = seal(SECRET, "helpdesk", {"k": "v"})
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SealedError):
        unseal(SECRET, "helpdesk", tampered)
