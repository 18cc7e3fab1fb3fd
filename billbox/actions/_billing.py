"""Actions on a customer's billing: subscriptions, coupons, tax ids, gateway invoices.

A Billbox customer can have identities at several gateway accounts, so the
actions that start from a customer also name the account to act in; the
customer's gateway id there comes from its ``customer_identity`` row.
"""

from __future__ import annotations

from sqlmodel import Session, select

from billbox.actions._core import run
from billbox.actions._types import (
    ActionRefused,
    ActionResult,
    Actor,
    Factory,
    Plan,
    Request,
    Spec,
)
from billbox.customers import account_namespace, find_by_identity
from billbox.gateways.base import Capability, NormalisedObject
from billbox.gateways.registry import ActingAdapter
from billbox.models import (
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    IdentityKind,
    Subscription,
    SubscriptionStatus,
)
from billbox.settings import Settings
from billbox.taxids import EU_MEMBER_STATES, InvalidTaxId, validate_tax_id


def _account(session: Session, account_id: int) -> GatewayAccount:
    account = session.get(GatewayAccount, account_id)
    if account is None:
        raise ActionRefused(f"There is no gateway account #{account_id}.")
    return account


def _gateway_customer(
    session: Session, customer_id: int, account: GatewayAccount
) -> tuple[Customer, str]:
    """The customer and its id at ``account``'s gateway, or a refusal saying it has none."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise ActionRefused(f"There is no customer #{customer_id}.")
    namespace = account_namespace(account)
    external = session.exec(
        select(CustomerIdentity.value).where(
            CustomerIdentity.customer_id == customer_id,
            CustomerIdentity.namespace == namespace,
            CustomerIdentity.kind == IdentityKind.GATEWAY_CUSTOMER,
        )
    ).first()
    if external is None:
        raise ActionRefused(
            f"Customer #{customer_id} has no {account.gateway.value} customer in account "
            f"{account.name!r}."
        )
    return customer, external


def _subscription(session: Session, subscription_id: int) -> tuple[Subscription, GatewayAccount]:
    subscription = session.get(Subscription, subscription_id)
    if subscription is None:
        raise ActionRefused(f"There is no subscription #{subscription_id}.")
    account = session.get(GatewayAccount, subscription.account_id)
    assert account is not None
    return subscription, account


# Cancel a subscription ------------------------------------------------------


def _call_cancel(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.cancel_subscription(
        request["subscription"], at_period_end=request["at_period_end"], idempotency_key=key
    )


def _canceled(result: ActionResult) -> str:
    return f"Canceled subscription {result.target_external_id}."


CANCEL = Spec(
    "cancel_subscription", Capability.CANCEL_SUBSCRIPTION, "Cancel", _call_cancel, _canceled
)
CANCEL_AT_END = Spec(
    "cancel_subscription",
    Capability.CANCEL_AT_PERIOD_END,
    "Cancel at period end",
    _call_cancel,
    lambda r: f"Subscription {r.target_external_id} will end with its current period.",
)


def cancel_subscription(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    subscription_id: int,
    *,
    at_period_end: bool,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Cancel now, or let the subscription run to the end of the paid period."""

    def prepare(session: Session) -> Plan:
        subscription, account = _subscription(session, subscription_id)
        if subscription.status == SubscriptionStatus.CANCELED:
            raise ActionRefused(f"Subscription {subscription.external_id} is already canceled.")
        if at_period_end and subscription.cancel_at_period_end:
            raise ActionRefused(
                f"Subscription {subscription.external_id} is already set to end with its period."
            )
        return Plan(
            account=account,
            target_kind="subscription",
            target_external_id=subscription.external_id,
            request={"subscription": subscription.external_id, "at_period_end": at_period_end},
        )

    return run(
        factory,
        settings,
        actor,
        CANCEL_AT_END if at_period_end else CANCEL,
        target_ref=f"subscription:{subscription_id}",
        args={"at_period_end": at_period_end},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


# Create a subscription ------------------------------------------------------


def _call_create(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.create_subscription(
        request["customer"], request["price"], coupon=request["coupon"], idempotency_key=key
    )


CREATE = Spec(
    "create_subscription",
    Capability.CREATE_SUBSCRIPTION,
    "New subscription",
    _call_create,
    lambda r: f"Created subscription {r.response_id} for customer {r.target_external_id}.",
)


def create_subscription(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    customer_id: int,
    account_id: int,
    price: str,
    *,
    coupon: str | None = None,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Subscribe the customer, at ``account``'s gateway, to ``price`` (gateway price/plan id)."""

    def prepare(session: Session) -> Plan:
        account = _account(session, account_id)
        _customer, external = _gateway_customer(session, customer_id, account)
        if not price.strip():
            raise ActionRefused("Choose the price (plan) to subscribe to.")
        return Plan(
            account=account,
            target_kind="customer",
            target_external_id=external,
            request={
                "customer": external,
                "price": price.strip(),
                "coupon": (coupon or "").strip() or None,
            },
        )

    return run(
        factory,
        settings,
        actor,
        CREATE,
        target_ref=f"customer:{customer_id}",
        args={"account_id": account_id, "price": price.strip(), "coupon": coupon},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


# Apply a coupon -------------------------------------------------------------


def _call_coupon(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.apply_coupon(
        request["customer"],
        request["coupon"],
        subscription_external_id=request["subscription"],
        idempotency_key=key,
    )


COUPON = Spec(
    "apply_coupon",
    Capability.APPLY_COUPON,
    "Coupon",
    _call_coupon,
    lambda r: f"Applied the coupon to {r.target_kind} {r.target_external_id}.",
)


def apply_coupon(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    subscription_id: int,
    coupon: str,
    *,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Apply a gateway coupon to a subscription (Stripe has no customer-wide coupon)."""

    def prepare(session: Session) -> Plan:
        subscription, account = _subscription(session, subscription_id)
        if subscription.status == SubscriptionStatus.CANCELED:
            raise ActionRefused(f"Subscription {subscription.external_id} is canceled.")
        if not coupon.strip():
            raise ActionRefused("Give the coupon code.")
        customer = ""
        if subscription.customer_id is not None:
            _c, customer = _gateway_customer(session, subscription.customer_id, account)
        return Plan(
            account=account,
            target_kind="subscription",
            target_external_id=subscription.external_id,
            request={
                "customer": customer,
                "subscription": subscription.external_id,
                "coupon": coupon.strip(),
            },
        )

    return run(
        factory,
        settings,
        actor,
        COUPON,
        target_ref=f"subscription:{subscription_id}",
        args={"coupon": coupon.strip()},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


# Add a tax id ---------------------------------------------------------------


def gateway_tax_type(country: str) -> str:
    """The tax id type gateways use (Stripe's names) for a validated id of ``country``."""
    if country in EU_MEMBER_STATES:
        return "eu_vat"
    return {"GB": "gb_vat", "AU": "au_abn", "NZ": "nz_gst"}[country]


def _call_tax_id(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.add_tax_id(
        request["customer"], request["scheme"], request["value"], idempotency_key=key
    )


def _store_tax_id(
    session: Session, account: GatewayAccount, request: Request, _answer: NormalisedObject
) -> None:
    """Keep the validated id on our customer too (documents and tax read it there)."""
    customer = find_by_identity(session, account_namespace(account), request["customer"])
    if customer is not None:
        customer.tax_id = request["value"]
        session.add(customer)


TAX_ID = Spec(
    "add_tax_id",
    Capability.ADD_TAX_ID,
    "Tax id",
    _call_tax_id,
    lambda r: f"Added the tax id to customer {r.target_external_id}.",
    after_apply=_store_tax_id,
)


def add_tax_id(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    customer_id: int,
    account_id: int,
    value: str,
    *,
    country: str | None = None,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Validate a tax id (python-stdnum, offline) and attach it at the gateway.

    ``country`` defaults to the customer's; an invalid number is refused
    with the validator's sentence and never sent.
    """

    def prepare(session: Session) -> Plan:
        account = _account(session, account_id)
        customer, external = _gateway_customer(session, customer_id, account)
        where = (country or customer.country or "").strip().upper()
        if not where:
            raise ActionRefused(
                f"Customer #{customer_id} has no country; say which country the tax id is from."
            )
        try:
            compact = validate_tax_id(value, where)
        except InvalidTaxId as exc:
            raise ActionRefused(exc.message) from None
        return Plan(
            account=account,
            target_kind="customer",
            target_external_id=external,
            request={
                "customer": external,
                "scheme": gateway_tax_type(where),
                "value": compact,
                "country": where,
            },
        )

    return run(
        factory,
        settings,
        actor,
        TAX_ID,
        target_ref=f"customer:{customer_id}",
        args={"account_id": account_id, "value": value.strip(), "country": country},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


# Finalize (and send) a gateway invoice --------------------------------------


def _call_finalize(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.finalize_invoice(request["invoice"], send=request["send"], idempotency_key=key)


FINALIZE = Spec(
    "finalize_invoice",
    Capability.FINALIZE_INVOICE,
    "Finalize invoice",
    _call_finalize,
    lambda r: f"Finalized invoice {r.target_external_id}.",
)


def finalize_invoice(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    invoice_id: int,
    *,
    send: bool = False,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Finalize a draft gateway invoice; with ``send`` the gateway emails it to the customer."""

    def prepare(session: Session) -> Plan:
        invoice = session.get(GatewayInvoice, invoice_id)
        if invoice is None:
            raise ActionRefused(f"There is no gateway invoice #{invoice_id}.")
        if invoice.status != GatewayInvoiceStatus.DRAFT:
            raise ActionRefused(
                f"Invoice {invoice.external_id} is {invoice.status.value}; only a draft can "
                "be finalized."
            )
        account = session.get(GatewayAccount, invoice.account_id)
        assert account is not None
        return Plan(
            account=account,
            target_kind="invoice",
            target_external_id=invoice.external_id,
            amount=invoice.amount_due,
            currency=invoice.currency,
            request={"invoice": invoice.external_id, "send": send},
        )

    return run(
        factory,
        settings,
        actor,
        FINALIZE,
        target_ref=f"invoice:{invoice_id}",
        args={"send": send},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )
