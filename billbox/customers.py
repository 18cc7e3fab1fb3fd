"""Link gateway customers to Billbox customers by gateway id and normalised email.

One person who pays through Stripe and PayPal with the same address is one
customer with two gateway identities and one email identity.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlmodel import Session, select

from billbox.gateways.types import GatewayCustomer
from billbox.models import Customer, CustomerIdentity, GatewayAccount, IdentityKind

EMAIL_NAMESPACE = "email"


def normalise_email(address: str) -> str | None:
    """Lower-cased, IDNA-normalised address, or None when it is not an address."""
    try:
        result = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.normalized.lower()


def account_namespace(account: GatewayAccount) -> str:
    return f"{account.gateway.value}:{account.id}"


def find_by_identity(session: Session, namespace: str, value: str) -> Customer | None:
    identity = session.exec(
        select(CustomerIdentity).where(
            CustomerIdentity.namespace == namespace, CustomerIdentity.value == value
        )
    ).first()
    return session.get(Customer, identity.customer_id) if identity else None


def find_by_email(session: Session, address: str) -> Customer | None:
    email = normalise_email(address)
    return find_by_identity(session, EMAIL_NAMESPACE, email) if email else None


def _add_identity(
    session: Session, customer: Customer, kind: IdentityKind, namespace: str, value: str
) -> None:
    assert customer.id is not None
    session.add(
        CustomerIdentity(customer_id=customer.id, kind=kind, namespace=namespace, value=value)
    )
    session.flush()


def link_gateway_customer(
    session: Session, account: GatewayAccount, data: GatewayCustomer
) -> Customer:
    """Return the customer for ``data``, creating or linking identities as needed."""
    namespace = account_namespace(account)
    customer = find_by_identity(session, namespace, data.external_id)
    email = normalise_email(data.email) if data.email else None
    if customer is None and email:
        customer = find_by_identity(session, EMAIL_NAMESPACE, email)
        if customer is not None:
            _add_identity(
                session, customer, IdentityKind.GATEWAY_CUSTOMER, namespace, data.external_id
            )
    if customer is None:
        customer = Customer(
            name=data.name,
            email=email or "",
            country=data.country,
            address=data.address,
            locale=data.locale or "en",
        )
        session.add(customer)
        session.flush()
        _add_identity(session, customer, IdentityKind.GATEWAY_CUSTOMER, namespace, data.external_id)
        if email:
            _add_identity(session, customer, IdentityKind.EMAIL, EMAIL_NAMESPACE, email)
        return customer
    # Known customer: fill blanks from the gateway, never overwrite what we hold.
    if not customer.name and data.name:
        customer.name = data.name
    if not customer.country and data.country:
        customer.country = data.country
    if not customer.email and email:
        customer.email = email
    if email and find_by_identity(session, EMAIL_NAMESPACE, email) is None:
        _add_identity(session, customer, IdentityKind.EMAIL, EMAIL_NAMESPACE, email)
    session.add(customer)
    return customer
