"""One customer with a paid receipt emailed from a signed Reply-To: the world replies land in.

Shared by the inbox, inspect and property tests so each builds the same
rows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session

from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    Document,
    DocumentKind,
    DocumentState,
    GatewayAccount,
    GatewayKind,
    IdentityKind,
    OutboundEmail,
    OutboundState,
    Payment,
    PaymentStatus,
)
from mailbridge.tokens import make_reply_token, reply_address


@dataclass
class Receipt:
    brand: Brand
    customer: Customer
    payment: Payment
    document: Document
    email: OutboundEmail
    token_address: str


def make_receipt(
    session: Session,
    *,
    secret: str,
    domain: str,
    customer_email: str = "ana@example.org",
    message_id: str = "<receipt-1@reply.example.com>",
    pdf: bytes | None = None,
    locale: str = "en",
) -> Receipt:
    """Brand, customer (with an email identity), a EUR 49.00 Stripe payment, its receipt
    document and the sent email carrying ``reply+<token>@domain``; committed."""
    brand = Brand(slug="nw", name="Northwind", legal_name="Northwind GmbH", country="DE")
    customer = Customer(name="Ana López", email=customer_email, locale=locale)
    session.add_all([brand, customer])
    session.flush()
    assert brand.id is not None and customer.id is not None
    session.add(
        CustomerIdentity(
            customer_id=customer.id,
            kind=IdentityKind.EMAIL,
            namespace="email",
            value=customer_email,
        )
    )
    account = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="s")
    session.add(account)
    session.flush()
    assert account.id is not None
    payment = Payment(
        account_id=account.id,
        customer_id=customer.id,
        external_id="pi_1",
        status=PaymentStatus.SUCCEEDED,
        amount=4900,
        currency="EUR",
        gateway_created_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    session.add(payment)
    session.flush()
    document = Document(
        brand_id=brand.id,
        customer_id=customer.id,
        kind=DocumentKind.RECEIPT,
        state=DocumentState.ISSUED,
        series="R",
        sequence=1,
        number="NW-R-1",
        source_key="payment:1",
        payment_id=payment.id,
        currency="EUR",
        total=4900,
        pdf=pdf,
    )
    session.add(document)
    session.flush()
    assert document.id is not None
    address = reply_address(
        make_reply_token(
            secret, document_id=document.id, customer_id=customer.id, brand_id=brand.id
        ),
        domain,
    )
    email = OutboundEmail(
        brand_id=brand.id,
        customer_id=customer.id,
        document_id=document.id,
        purpose_key="receipt:1",
        state=OutboundState.SENT,
        to_address=customer_email,
        from_address="billing@northwind.test",
        reply_to=address,
        subject="Your receipt NW-R-1",
        message_id=message_id,
    )
    session.add(email)
    session.commit()
    return Receipt(brand, customer, payment, document, email, address)
