"""Compose the email that carries a document: text + HTML, the stored PDF, signed addresses.

The result is the exact bytes handed to the relay (and stored on the
:class:`~billbox.models.OutboundEmail` row), built with the stdlib's
:class:`~email.message.EmailMessage`::

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain   templates/email/<kind>.txt.j2  or document.txt.j2
    │   └── text/html    templates/email/<kind>.html.j2 or document.html.j2
    └── application/pdf  <number>.pdf (Document.pdf, never re-rendered)

Headers and why:

- ``From: <brand name> <brand.email_from>``: the seller the customer knows.
- ``Reply-To: reply+<token>@<reply domain>``: the signed token
  (:mod:`mailbridge.tokens`) names document, customer and brand, so a reply
  is threaded and matched even from another address.
- ``Auto-Submitted: auto-generated`` (RFC 3834): other robots must not
  answer it; ``X-Auto-Response-Suppress: OOF, AutoReply`` asks Exchange
  the same. ``X-Loop: billbox`` and a Message-ID on the reply domain let
  the inbound classifier recognise our own mail coming back.
- ``Message-ID`` is minted by the caller (:func:`new_message_id`) so it can
  be stored before anything is sent and kept across retries.
- No ``Return-Path``: RFC 5321 section 4.4 leaves it to the final
  delivery server, which copies our VERP envelope sender
  (:mod:`mailbridge.verp`) into it.
- ``DKIM-Signature`` (dkimpy, relaxed/relaxed, rsa-sha256) when a key is
  configured; it is computed over these very bytes.

Policy ``SMTP`` (CRLF, 7-bit headers with RFC 2047 words) is used unless an
address itself is non-ASCII, which needs ``SMTPUTF8`` end to end.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from billbox.documents.view import label, translate_title
from billbox.models import Brand, Customer, Document, DocumentKind
from mailbridge.l10n import EMAIL_TEMPLATES, email_locale
from mailbridge.tokens import make_reply_token, reply_address

__all__ = [
    "ComposeConfig",
    "ComposeError",
    "ComposedEmail",
    "DkimKey",
    "compose_document_email",
    "new_message_id",
]

LOOP_MARKER = "billbox"
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_FILENAME_UNSAFE = re.compile(r"[^\w.-]+")
_LOCAL_BAD = re.compile(r'[\s<>()\[\]\\,;:"@\x00-\x1f\x7f]')
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")
_DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"auto-submitted",
    b"mime-version",
    b"content-type",
)


class ComposeError(ValueError):
    """The document cannot be emailed as it is (no recipient, no sender, no PDF)."""


@dataclass(frozen=True)
class DkimKey:
    """A DKIM signing identity: ``<selector>._domainkey.<domain>`` publishes the public key."""

    selector: str
    domain: str
    private_key: bytes  # PEM, PKCS#1 or PKCS#8 RSA

    @classmethod
    def from_file(cls, selector: str, domain: str, path: Path) -> DkimKey:
        return cls(selector=selector, domain=domain, private_key=path.read_bytes())


@dataclass(frozen=True)
class ComposeConfig:
    """What composing needs besides the rows: the secret, our reply domain, a DKIM key."""

    secret: str
    reply_domain: str
    dkim: DkimKey | None = None


@dataclass(frozen=True)
class ComposedEmail:
    """The bytes to send and the header values the outbound row stores."""

    raw: bytes
    message_id: str
    subject: str
    from_address: str
    to_address: str
    reply_to: str
    smtputf8: bool


def new_message_id(reply_domain: str) -> str:
    """A fresh ``<…@reply domain>`` Message-ID; our domain marks our own mail as a loop."""
    return make_msgid(domain=reply_domain)


@functools.cache
def _environment(folder: Path) -> jinja2.Environment:
    """One Jinja environment per template folder: templates compile once per process."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _address(value: str, what: str, display_name: str = "") -> Address:
    """A plain ``local@domain`` (UTF-8 local parts allowed, IDN domains as A-labels).

    Deliberately syntax only: demo and test domains (``.localhost``,
    ``.test``) must work, and the relay is the judge of deliverability.
    """
    local, at, domain = (value or "").strip().rpartition("@")
    if not at or not local or len(local.encode("utf-8")) > 64 or _LOCAL_BAD.search(local):
        raise ComposeError(f"{what} {value!r} is not an email address")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ComposeError(f"{what} {value!r} has a malformed domain") from None
    if not _DOMAIN.fullmatch(ascii_domain):
        raise ComposeError(f"{what} {value!r} has a malformed domain")
    return Address(display_name=_one_line(display_name), username=local, domain=ascii_domain)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _recipient(document: Document, customer: Customer | None) -> tuple[str, str]:
    """The buyer's address and name as copied onto the document, else the customer's."""
    buyer = document.buyer or {}
    email = _text(buyer.get("email")) or (customer.email if customer else "")
    name = _text(buyer.get("name")) or (customer.name if customer else "")
    return email, name


def _colour(value: str, default: str) -> str:
    """Only ``#rrggbb`` reaches a style attribute; anything else is the default."""
    return value if _COLOUR.fullmatch(value or "") else default


def _http_url(value: str | None) -> str:
    """Only an http(s) URL becomes a link; anything else is left out."""
    value = (value or "").strip()
    return value if value.startswith(("https://", "http://")) and _one_line(value) == value else ""


def _render(kind: str, suffix: str, context: dict[str, Any]) -> str:
    env = _environment(EMAIL_TEMPLATES)
    template = env.select_template([f"{kind}.{suffix}.j2", f"document.{suffix}.j2"])
    return template.render(context)


def compose_document_email(
    document: Document,
    brand: Brand,
    *,
    config: ComposeConfig,
    message_id: str,
    customer: Customer | None = None,
    now: datetime | None = None,
    resent: bool = False,
    billing_url: str | None = None,
) -> ComposedEmail:
    """Build the email for ``document`` from ``brand``; raise :class:`ComposeError` if impossible.

    Uses ``document.pdf`` as stored: composing never renders. ``resent``
    adds a line saying this is a copy of an earlier email. ``billing_url`` (the
    customer's signed billing-page link) replaces the document's plain one.
    """
    if not document.pdf:
        raise ComposeError(f"document {document.number} has no PDF yet")
    if document.id is None or document.customer_id is None:
        raise ComposeError(f"document {document.number} has no customer to write to")
    to_email, to_name = _recipient(document, customer)
    to = _address(to_email, "buyer email", to_name)
    sender = _address(brand.email_from, f"brand {brand.slug!r} email_from", brand.name)
    token = make_reply_token(
        config.secret,
        document_id=document.id,
        customer_id=document.customer_id,
        brand_id=brand.id,
    )
    reply_to = reply_address(token, config.reply_domain)

    loc = email_locale(document.locale)
    words = loc.words
    kind = str(DocumentKind(document.kind))
    # What the customer paid (or owes, or is credited): the total plus the
    # EN 16931 rounding line, as the PDF's last line shows it.
    total = document.total + document.rounding_amount
    if kind == DocumentKind.CREDIT_NOTE:
        total = abs(total)
    values = {
        "number": document.number,
        "brand": _one_line(brand.name),
        "amount": loc.money(total, document.currency),
        "date": loc.day(document.issued_at or document.created_at),
        "name": _one_line(to_name),
    }
    subject = _one_line(words["subject"][kind].format(**values))
    greeting = (words["greeting"] if values["name"] else words["greeting_anonymous"]).format(
        **values
    )
    context: dict[str, Any] = {
        **values,
        "w": words,
        "lang": loc.language,
        "subject": subject,
        "greeting": greeting,
        "intro": words["intro"][kind].format(**values),
        "kind_label": (
            translate_title(document.title, loc.locale) if document.title else words["kind"][kind]
        ),
        "payment_method": _one_line(document.payment_method),
        "payment_method_label": label(loc.locale, "payment_method"),
        "billing_url": _http_url(billing_url or document.billing_url),
        "billing_page_label": label(loc.locale, "billing_page"),
        "brand_name": values["brand"],
        "footer": brand.footer.strip(),
        "primary": _colour(brand.primary_color, "#1f2937"),
        "accent": _colour(brand.accent_color, "#2563eb"),
        "resent": resent,
    }

    smtputf8 = not (to.addr_spec.isascii() and sender.addr_spec.isascii())
    msg = EmailMessage(policy=policy.SMTPUTF8 if smtputf8 else policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg["X-Loop"] = LOOP_MARKER
    msg.set_content(_render(kind, "txt", context))
    msg.add_alternative(_render(kind, "html", context), subtype="html")
    filename = _FILENAME_UNSAFE.sub("-", document.number).strip("-.") or "document"
    msg.add_attachment(
        document.pdf, maintype="application", subtype="pdf", filename=f"{filename}.pdf"
    )
    raw = msg.as_bytes()
    if config.dkim is not None:
        raw = _dkim_sign(raw, config.dkim)
    return ComposedEmail(
        raw=raw,
        message_id=message_id,
        subject=subject,
        from_address=sender.addr_spec,
        to_address=to.addr_spec,
        reply_to=reply_to,
        smtputf8=smtputf8,
    )


def _dkim_sign(raw: bytes, key: DkimKey) -> bytes:
    """Prepend a ``DKIM-Signature`` header over ``raw`` (relaxed/relaxed, rsa-sha256)."""
    import dkim  # imported here: only deployments with a key pay for it

    signature = dkim.sign(
        raw,
        key.selector.encode("ascii"),
        key.domain.encode("ascii"),
        key.private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=list(_DKIM_HEADERS),
    )
    return bytes(signature) + raw
