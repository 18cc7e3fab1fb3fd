"""Composing a document's email: structure, signed headers, locales, DKIM, settings."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from billbox.errors import SettingsError
from billbox.models import DocumentKind
from billbox.settings import load_settings
from mailbridge.compose import (
    ComposeConfig,
    ComposeError,
    DkimKey,
    compose_document_email,
    new_message_id,
)
from mailbridge.send import mailer_config
from mailbridge.tokens import read_reply_token, token_from_address
from tests.mail_world import PDF, REPLY_DOMAIN, SECRET, make_document, make_world

CONFIG = ComposeConfig(secret=SECRET, reply_domain=REPLY_DOMAIN)


def compose(session, *, config: ComposeConfig = CONFIG, resent: bool = False, **doc):
    world = make_world(session)
    document = make_document(session, world, **doc)
    composed = compose_document_email(
        document,
        world.brand,
        customer=world.customer,
        config=config,
        message_id=new_message_id(REPLY_DOMAIN),
        resent=resent,
    )
    return world, document, composed


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_the_email_is_text_and_html_alternatives_with_the_stored_pdf_attached(session):
    """multipart/mixed: an alternative (plain, html) and the PDF bytes exactly as stored."""
    _, document, composed = compose(session)
    message = parse(composed.raw)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.get_payload()] == [
        "text/plain",
        "text/html",
    ]
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{document.number}.pdf"
    assert attachment.get_content() == PDF
    assert not message.defects


def test_headers_carry_sender_signed_reply_to_auto_submitted_and_the_message_id(session):
    """From is the brand, Reply-To a token naming document+customer+brand, RFC 3834 marked."""
    world, document, composed = compose(session)
    message = parse(composed.raw)
    assert message["From"].addresses[0].display_name == "Northwind"
    assert message["From"].addresses[0].addr_spec == "billing@northwind.test"
    assert message["To"].addresses[0].addr_spec == "ana@example.org"
    assert message["To"].addresses[0].display_name == "Ana López"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Loop"] == "billbox"
    assert message["Message-ID"] == composed.message_id
    assert composed.message_id.endswith(f"@{REPLY_DOMAIN}>")
    assert message["Date"].datetime.tzinfo is not None
    assert message["Return-Path"] is None  # the final MTA writes it from the envelope
    reply_to = message["Reply-To"].addresses[0].addr_spec
    assert reply_to == composed.reply_to
    token = token_from_address(reply_to, REPLY_DOMAIN)
    claims = read_reply_token(SECRET, token)
    assert claims is not None
    assert (claims.document_id, claims.customer_id, claims.brand_id) == (
        document.id,
        world.customer.id,
        world.brand.id,
    )
    assert len(reply_to.split("@")[0]) <= 64


def test_a_tampered_or_foreign_key_token_does_not_verify(session):
    """Any changed character, or another secret, and the token is worthless."""
    _, _, composed = compose(session)
    token = token_from_address(composed.reply_to, REPLY_DOMAIN)
    assert token is not None
    last = token[-1]
    tampered = token[:-1] + ("a" if last != "a" else "b")
    assert read_reply_token(SECRET, tampered) is None
    assert read_reply_token("another-secret-key-0123", token) is None


EXPECTED = {
    "en": ("Your receipt NW-R-2026-000001 from Northwind", "€1,234.50", "November 1, 2026"),
    "es": ("Su recibo NW-R-2026-000001 de Northwind", "1.234,50\xa0€", "1 de noviembre de 2026"),
    "de": ("Ihre Quittung NW-R-2026-000001 von Northwind", "1.234,50\xa0€", "1. November 2026"),
    "fr": ("Votre reçu NW-R-2026-000001 de Northwind", "1\u202f234,50\xa0€", "1 novembre 2026"),
}


@pytest.mark.parametrize("locale", sorted(EXPECTED))
def test_subject_and_body_are_localized_with_babel_money_and_dates(session, locale):
    """Words in the customer's language; amount and date in its Babel formats, both parts."""
    subject, amount, day = EXPECTED[locale]
    _, _, composed = compose(session, locale=locale)
    message = parse(composed.raw)
    assert message["Subject"] == subject == composed.subject
    text, html = bodies(message)
    for body in (text, html):
        assert amount in body
        assert day in body
    assert f'lang="{locale}"' in html


def test_a_regional_locale_keeps_its_formats_and_an_unknown_language_falls_back_to_english(
    session,
):
    """de_CH formats like Switzerland with German words; pt_BR gets English words."""
    _, _, swiss = compose(session, locale="de-CH", currency="CHF")
    assert "Ihre Quittung" in swiss.subject
    assert "CHF\xa01\u2019234.50" in bodies(parse(swiss.raw))[0]


def test_an_unsupported_language_gets_english_words_in_its_own_number_format(session):
    """pt_BR: no Portuguese words yet, so English, but a Brazilian decimal comma."""
    _, _, composed = compose(session, locale="pt_BR")
    assert composed.subject.startswith("Your receipt")
    assert "1.234,50" in bodies(parse(composed.raw))[0]


@pytest.mark.parametrize(
    ("kind", "locale", "subject"),
    [
        (DocumentKind.INVOICE, "en", "Invoice NW-R-2026-000001 from Northwind"),
        (DocumentKind.INVOICE, "de", "Rechnung NW-R-2026-000001 von Northwind"),
        (DocumentKind.CREDIT_NOTE, "fr", "Avoir NW-R-2026-000001 de Northwind"),
        (DocumentKind.CREDIT_NOTE, "es", "Nota de crédito NW-R-2026-000001 de Northwind"),
    ],
)
def test_invoices_and_credit_notes_have_their_own_wording(session, kind, locale, subject):
    """The kind picks the words; a credit note shows the credited amount without a sign."""
    total = -4900 if kind == DocumentKind.CREDIT_NOTE else 4900
    _, _, composed = compose(session, kind=kind, locale=locale, total=total)
    assert composed.subject == subject
    text, _ = bodies(parse(composed.raw))
    assert "49" in text and "-49" not in text and "\u221249" not in text


def test_a_resent_email_says_it_is_a_copy(session):
    """Resends carry a line saying so; the first email does not."""
    world = make_world(session)
    document = make_document(session, world)
    texts = [
        bodies(
            parse(
                compose_document_email(
                    document, world.brand, config=CONFIG, message_id=f"<{n}@x>", resent=resent
                ).raw
            )
        )[0]
        for n, resent in enumerate((False, True))
    ]
    assert "copy of a document" not in texts[0]
    assert "copy of a document" in texts[1]


def test_brand_and_buyer_text_is_escaped_in_html_and_cannot_inject_headers(session):
    """A hostile brand name is text in HTML, and CR/LF never reach a header."""
    world = make_world(session)
    document = make_document(session, world)
    session.expunge_all()  # edits below stay in memory: the columns could not hold them
    world.brand.name = "Evil <script>alert(1)</script>\r\nBcc: victim@example.org"
    world.brand.primary_color = "red;background:url(x)"
    document.buyer = {"name": "Ana\r\nBcc: x@example.org", "email": "ana@example.org"}
    composed = compose_document_email(
        document, world.brand, customer=world.customer, config=CONFIG, message_id="<m@x>"
    )
    message = parse(composed.raw)
    assert message["Bcc"] is None
    _, html = bodies(message)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "url(x)" not in html
    assert "#1f2937" in html  # the default replaced the malformed colour


def test_documents_that_cannot_be_emailed_raise_compose_error(session):
    """No PDF, no sender address or no recipient: a clear error instead of a broken email."""
    world = make_world(session)
    no_pdf = make_document(session, world, number="NW-R-2026-000002", pdf=None)
    with pytest.raises(ComposeError, match="no PDF"):
        compose_document_email(no_pdf, world.brand, config=CONFIG, message_id="<a@x>")
    document = make_document(session, world, number="NW-R-2026-000003")
    world.brand.email_from = ""
    with pytest.raises(ComposeError, match="email_from"):
        compose_document_email(document, world.brand, config=CONFIG, message_id="<b@x>")
    world.brand.email_from = "billing@northwind.test"
    document.buyer = {"name": "Nobody", "email": "not an address"}
    with pytest.raises(ComposeError, match="buyer email"):
        compose_document_email(document, world.brand, config=CONFIG, message_id="<c@x>")


def test_a_non_ascii_address_needs_smtputf8(session):
    """An internationalised mailbox is sent as SMTPUTF8 with UTF-8 headers."""
    world = make_world(session)
    document = make_document(session, world)
    document.buyer = {"name": "José", "email": "josé@ejemplo.es"}
    composed = compose_document_email(
        document, world.brand, config=CONFIG, message_id="<u@reply.billbox.test>"
    )
    assert composed.smtputf8
    assert "josé@ejemplo.es".encode() in composed.raw


# -- DKIM ---------------------------------------------------------------------


def rsa_key() -> tuple[bytes, bytes]:
    """A fresh 2048-bit key: PEM private key, and the DNS TXT record of its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_a_dkim_signature_verifies_with_the_published_key_and_breaks_on_tampering(session):
    """dkimpy verifies our signature against a DNS answer we serve; an edit breaks it."""
    pem, record = rsa_key()
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record if name == b"mail2026._domainkey.northwind.test." else b""

    config = ComposeConfig(
        secret=SECRET,
        reply_domain=REPLY_DOMAIN,
        dkim=DkimKey(selector="mail2026", domain="northwind.test", private_key=pem),
    )
    _, _, composed = compose(session, config=config)
    assert composed.raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(composed.raw, dnsfunc=dns)
    assert asked == [b"mail2026._domainkey.northwind.test."]
    signed = parse(composed.raw)["DKIM-Signature"]
    assert "d=northwind.test" in signed and "s=mail2026" in signed
    tampered = composed.raw.replace(b"Subject: Your receipt", b"Subject: Your refund")
    assert not dkim.verify(tampered, dnsfunc=dns)


def env(monkeypatch: pytest.MonkeyPatch, **values: str):
    for key in list(__import__("os").environ):
        if key.startswith("BILLBOX_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BILLBOX_SECRET_KEY", SECRET)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return load_settings(_env_file=None)


def test_dkim_settings_build_a_signing_key(monkeypatch, tmp_path: Path):
    """Selector, domain and a readable PEM key file: the mailer signs with them."""
    pem, _ = rsa_key()
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem)
    settings = env(
        monkeypatch,
        BILLBOX_DKIM_SELECTOR="Mail2026",
        BILLBOX_DKIM_DOMAIN="northwind.test",
        BILLBOX_DKIM_PRIVATE_KEY_FILE=str(key_file),
    )
    dkim_key = mailer_config(settings).compose.dkim
    assert dkim_key == DkimKey("mail2026", "northwind.test", pem)


@pytest.mark.parametrize(
    ("values", "variable", "fragment"),
    [
        (
            {"BILLBOX_DKIM_PRIVATE_KEY_FILE": "/nonexistent/dkim.pem"},
            "BILLBOX_DKIM_PRIVATE_KEY_FILE",
            "cannot read /nonexistent/dkim.pem",
        ),
        ({"BILLBOX_DKIM_PRIVATE_KEY_FILE": "GARBAGE"}, "BILLBOX_DKIM_PRIVATE_KEY_FILE", "PEM"),
        ({}, "BILLBOX_DKIM_PRIVATE_KEY_FILE", "together"),
        ({"BILLBOX_DKIM_DOMAIN": "not a domain"}, "BILLBOX_DKIM_DOMAIN", "DNS name"),
    ],
)
def test_bad_dkim_settings_stop_the_program_naming_the_setting(
    monkeypatch, tmp_path: Path, values, variable, fragment
):
    """A missing, unreadable or unparsable key, or a partial set, names the variable to fix."""
    full = {"BILLBOX_DKIM_SELECTOR": "mail", "BILLBOX_DKIM_DOMAIN": "northwind.test"}
    if values.get("BILLBOX_DKIM_PRIVATE_KEY_FILE") == "GARBAGE":
        garbage = tmp_path / "garbage.pem"
        garbage.write_text(
            "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"
        )
        values = {"BILLBOX_DKIM_PRIVATE_KEY_FILE": str(garbage)}
    with pytest.raises(SettingsError) as info:
        env(monkeypatch, **{**full, **values})
    assert info.value.variable == variable
    assert fragment in info.value.problem


def test_title_payment_method_and_billing_link_come_from_the_document(session):
    """The document's own title (translated), payment method and billing page link appear."""
    world = make_world(session)
    document = make_document(session, world, locale="de")
    document.title = "Tax invoice"
    document.payment_method = "Visa •••• 4242"
    document.billing_url = "https://billing.northwind.test/b/abc"
    document.rounding_amount = 1
    composed = compose_document_email(document, world.brand, config=CONFIG, message_id="<t@x>")
    text, html = bodies(parse(composed.raw))
    assert "Visa •••• 4242" in text and "Visa •••• 4242" in html
    assert "https://billing.northwind.test/b/abc" in text
    assert 'href="https://billing.northwind.test/b/abc"' in html
    assert "1.234,51\xa0€" in text  # total plus the rounding line: what was paid

    document.billing_url = "javascript:alert(1)"
    hostile = compose_document_email(document, world.brand, config=CONFIG, message_id="<u@x>")
    assert "javascript:" not in hostile.raw.decode("ascii", "replace")
