"""Signed reply tokens: round trip, tampering, other keys, case folding, hostile input."""

from __future__ import annotations

import base64
import random
import re
import string

import pytest

from mailbridge.tokens import (
    MAX_ID,
    TokenClaims,
    make_reply_token,
    read_reply_token,
    reply_address,
    token_from_address,
)

SECRET = "test-secret-key-0123456789"
OTHER_SECRET = "another-secret-key-9876543210"
DOMAIN = "reply.billbox.test"
BASE32_LOWER = "abcdefghijklmnopqrstuvwxyz234567"
# RFC 5321 dot-atom text (atext), without quoting.
DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def token(**overrides: int | None) -> str:
    fields: dict[str, int | None] = {"document_id": 42, "customer_id": 7, "brand_id": 3}
    fields.update(overrides)
    return make_reply_token(SECRET, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "claims",
    [
        TokenClaims(customer_id=7, document_id=42, brand_id=3),
        TokenClaims(customer_id=7, document_id=None, brand_id=None),
        TokenClaims(customer_id=0, document_id=0, brand_id=0),
        TokenClaims(customer_id=MAX_ID, document_id=MAX_ID, brand_id=MAX_ID),
        TokenClaims(customer_id=128, document_id=127, brand_id=None),
    ],
)
def test_a_token_reads_back_as_the_claims_it_was_made_with(claims):
    """make then read gives the same customer, document and brand, None included."""
    made = make_reply_token(
        SECRET,
        document_id=claims.document_id,
        customer_id=claims.customer_id,
        brand_id=claims.brand_id,
    )
    assert read_reply_token(SECRET, made) == claims


def test_a_token_is_short_lowercase_and_versioned():
    """A typical token is ``v1`` and lower-case base32, small enough to read in a header."""
    made = token()
    assert made.startswith("v1")
    assert set(made[2:]) <= set(BASE32_LOWER)
    assert len(made) <= 32


def test_the_longest_possible_reply_address_fits_an_smtp_local_part():
    """With the largest ids the local part is at most 64 octets and a plain dot-atom."""
    made = make_reply_token(SECRET, document_id=MAX_ID, customer_id=MAX_ID, brand_id=MAX_ID)
    local, _at, domain = reply_address(made, DOMAIN).rpartition("@")
    assert len(local.encode("ascii")) <= 64
    assert DOT_ATOM.match(local)
    assert domain == DOMAIN


def test_ids_a_token_cannot_carry_are_refused_when_making_it():
    """Negative or too large ids and an empty secret are programming errors: ValueError."""
    with pytest.raises(ValueError):
        make_reply_token(SECRET, document_id=MAX_ID + 1, customer_id=1)
    with pytest.raises(ValueError):
        make_reply_token(SECRET, document_id=None, customer_id=-1)
    with pytest.raises(ValueError):
        make_reply_token("", document_id=1, customer_id=1)


def test_changing_any_single_character_makes_the_token_invalid():
    """Every position, every other base32 character: no edit still verifies."""
    made = token()
    for position in range(len(made)):
        for replacement in BASE32_LOWER + "v1":
            if replacement == made[position]:
                continue
            tampered = made[:position] + replacement + made[position + 1 :]
            assert read_reply_token(SECRET, tampered) is None, (position, replacement)


def test_truncated_or_extended_tokens_are_invalid():
    """Dropping or adding characters anywhere never yields a valid token."""
    made = token()
    for cut in range(len(made)):
        assert read_reply_token(SECRET, made[:cut]) is None
        assert read_reply_token(SECRET, made[:cut] + made[cut + 1 :]) is None
    for extra in ("a", "aa", "aaaaaaaa", "2"):
        assert read_reply_token(SECRET, made + extra) is None


def test_a_token_signed_with_another_secret_is_invalid():
    """A token from another installation (or before a key rotation) verifies as None."""
    foreign = make_reply_token(OTHER_SECRET, document_id=42, customer_id=7, brand_id=3)
    assert read_reply_token(SECRET, foreign) is None
    assert read_reply_token(OTHER_SECRET, foreign) is not None


def test_the_mac_key_is_derived_not_the_raw_secret():
    """A tag computed with the raw secret as key (another use of it) does not verify."""
    import hashlib
    import hmac

    made = token()
    raw = base64.b32decode(made[2:].upper() + "=" * (-len(made[2:]) % 8))
    fields = raw[:-10]
    tag = hmac.new(SECRET.encode(), b"v1" + fields, hashlib.sha256).digest()[:10]
    forged = "v1" + base64.b32encode(fields + tag).decode().rstrip("=").lower()
    assert forged != made
    assert read_reply_token(SECRET, forged) is None


def test_an_upper_cased_token_still_verifies():
    """Mail servers may change the case of the local part; the token survives that."""
    made = token()
    assert read_reply_token(SECRET, made.upper()) == read_reply_token(SECRET, made)
    assert read_reply_token(SECRET, made.title()) is not None


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "v1",
        "v2" + "a" * 30,
        "v1" + "a" * 10_000,
        "x" * 1_000_000,
        "v1" + "é" * 20,
        "v1\uff41\uff42\uff43",  # full-width letters
        "v1\x00\x00\x00\x00",
        "v1" + "=" * 16,
        "v1 abc def",
        "v1-aaaaaaaaaaaaaaaaaaaaaa",
        "v1" + "8" * 23,
        "v1" + "a" * 23,
        "\ud800",
    ],
)
def test_hostile_tokens_are_none_and_never_raise(hostile):
    """Empty, huge, non-ASCII, padding, punctuation and unsigned garbage: just None."""
    assert read_reply_token(SECRET, hostile) is None


def test_random_strings_and_random_edits_never_raise_or_verify():
    """A seeded fuzz (hypothesis is not installed): thousands of strings, none accepted."""
    rng = random.Random(20261125)
    made = token()
    alphabet = BASE32_LOWER + string.ascii_uppercase + string.punctuation + "01899é\x00 "
    for _ in range(3000):
        length = rng.randint(0, 70)
        candidate = "v1" + "".join(rng.choice(alphabet) for _ in range(length))
        assert read_reply_token(SECRET, candidate) is None
        edited = list(made)
        for _ in range(rng.randint(1, 3)):
            edited[rng.randrange(len(edited))] = rng.choice(alphabet)
        edited_token = "".join(edited)
        if edited_token.lower() != made:
            assert read_reply_token(SECRET, edited_token) is None


def test_an_empty_secret_verifies_nothing():
    """A missing key must not turn into "anyone can sign": even a token made with it fails."""
    import hashlib
    import hmac

    def sign(secret: str) -> str:
        fields = bytes([43, 7, 4])  # document 42, customer 7, brand 3, as varints
        key = hmac.new(secret.encode(), b"billbox reply token v1", hashlib.sha256).digest()
        tag = hmac.new(key, b"v1" + fields, hashlib.sha256).digest()[:10]
        return "v1" + base64.b32encode(fields + tag).decode().rstrip("=").lower()

    assert sign(SECRET) == token()  # the construction above is the real one
    made_with_empty_key = sign("")
    assert read_reply_token(SECRET, made_with_empty_key) is None
    assert read_reply_token("", made_with_empty_key) is None
    assert read_reply_token("", token()) is None


def test_reply_address_and_token_from_address_round_trip():
    """``reply+<token>@domain`` gives the token back, whatever the case of the parts."""
    made = token()
    address = reply_address(made, DOMAIN)
    assert address == f"reply+{made}@{DOMAIN}"
    assert token_from_address(address, DOMAIN) == made
    assert token_from_address(address.upper(), DOMAIN) == made
    assert token_from_address(f"<{address}>", DOMAIN.upper()) == made
    assert token_from_address(f'"reply+{made}"@{DOMAIN}', DOMAIN) == made


@pytest.mark.parametrize(
    "address",
    [
        "reply+abc@other.example",
        "reply+abc@sub.reply.billbox.test",
        "support@reply.billbox.test",
        "reply@reply.billbox.test",
        "reply+@reply.billbox.test",
        "noreply+abc@reply.billbox.test",
        "",
        "@",
        "reply+é@reply.billbox.test",
        "x" * 100_000 + "@reply.billbox.test",
    ],
)
def test_addresses_that_are_not_our_reply_addresses_carry_no_token(address):
    """Another domain, another local part, an empty tag or junk: None, no exception."""
    assert token_from_address(address, DOMAIN) is None
