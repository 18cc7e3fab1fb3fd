"""Deterministic demo data, created through the same kernel functions gateway sync uses.

``billbox demo`` must show what a real installation looks like, so every
gateway-shaped object goes through :func:`link_gateway_customer` and the
ledger's ``apply_*`` functions: a bug there shows up in the demo as it would
in production. All randomness comes from one ``random.Random(seed)`` and
every date from ``anchor``, so equal arguments give equal data and tests can
compare runs. Brands and number series are plain rows because no kernel
function creates them yet.
"""

from __future__ import annotations

import random
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, func, select

from billbox.customers import account_namespace, link_gateway_customer
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.ledger import (
    apply_invoice,
    apply_payment,
    apply_refund,
    apply_subscription,
    mark_backfill,
)
from billbox.models import (
    Brand,
    CustomerIdentity,
    DocumentKind,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    NumberSeries,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
)
from billbox.money import exponent

T = TypeVar("T")
Item = GatewayInvoiceData | GatewayPayment | GatewayRefund
PS, SS, IS = PaymentStatus, SubscriptionStatus, GatewayInvoiceStatus

BATCH = 200
"""Payments per transaction: few commits (SQLite syncs each one) yet a small session."""

_B62 = string.digits + string.ascii_letters
_UPPER = string.digits + string.ascii_uppercase
_DAY = timedelta(days=1)

# country: locale, weight, name pool, street address, VAT/ABN pattern (# digit, @ letter)
_COUNTRIES = {
    "DE": ("de", 14, "de", "Hauptstraße {n}\n10115 Berlin", "DE#########"),
    "AT": ("de", 3, "de", "Mariahilfer Straße {n}\n1060 Wien", "ATU########"),
    "FR": ("fr", 9, "fr", "{n} rue de Rivoli\n75001 Paris", "FR###########"),
    "BE": ("fr", 2, "fr", "Rue Neuve {n}\n1000 Bruxelles", "BE0#########"),
    "ES": ("es", 7, "es", "Calle de Alcalá {n}\n28014 Madrid", "ES@########"),
    "NL": ("en", 5, "nl", "Keizersgracht {n}\n1015 CJ Amsterdam", "NL#########B01"),
    "IT": ("en", 6, "it", "Via del Corso {n}\n00186 Roma", "IT###########"),
    "IE": ("en", 3, "en", "{n} Grafton Street\nDublin 2", "IE#######@"),
    "GR": ("en", 2, "gr", "Ermou {n}\n105 63 Athina", "EL#########"),
    "LV": ("en", 2, "ru", "Brīvības iela {n}\nRīga, LV-1010", "LV###########"),
    "GB": ("en", 9, "en", "{n} Baker Street\nLondon NW1 6XE", "GB#########"),
    "US": ("en", 12, "en", "{n} Market Street\nSan Francisco, CA 94103", ""),
    "AU": ("en", 11, "en", "{n} George Street\nSydney NSW 2000", "###########"),
    "NZ": ("en", 4, "en", "{n} Queen Street\nAuckland 1010", ""),
    "JP": ("en", 6, "jp", "1-{n} Shibuya\nTokyo 150-0002", ""),
}
_NAMES = {  # given names | family names ("_" stands for a space)
    "de": "Jürgen Anna Lukas Sophie Maximilian Lea Felix Mia Jonas Katharina"
          "|Groß Müller Schmidt Schneider Fischer Weber Wagner Becker Hoffmann Schäfer",
    "fr": "Élodie Camille Léa Hugo Théo Chloé Louis Manon François Inès"
          "|Dubois Lefèvre Martin Bernard Moreau Laurent Girard Rousseau Fontaine Chevalier",
    "es": "José María Lucía Javier Álvaro Sofía Pablo Carmen Íñigo Begoña"
          "|García Fernández López Martínez Sánchez Pérez Gómez Muñoz Jiménez Núñez",
    "nl": "Daan Sanne Lieke Bram Fleur Thijs Anouk Joris Eva Ruben"
          "|de_Vries Jansen van_den_Berg Bakker Visser Smit de_Jong Meijer van_Dijk Mulder",
    "it": "Giulia Marco Francesca Luca Chiara Matteo Alessia Niccolò Sara Davide"
          "|Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco",
    "en": "Oliver Amelia Jack Isla Noah Charlotte Liam Olivia Harper Ethan Siobhán Aoife"
          "|Smith Jones Williams Brown Taylor O'Brien Murphy Walsh Wilson Thompson Nguyen Patel",
    "jp": "Haruto Yui Sota Hina Ren Aoi Yuto Sakura"
          "|Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura",
    # Female given names with female or gender-neutral family names: every pair is grammatical.
    "gr": "Ελένη Μαρία Κατερίνα Σοφία Δήμητρα Αναστασία"
          "|Παπαδοπούλου Γεωργίου Νικολάου Οικονόμου Δημητρίου Αντωνίου",
    "ru": "Дмитрий Алексей Сергей Андрей Иван Николай|Иванов Петров Смирнов Кузнецов Попов Соколов",
}  # fmt: skip
# Transliteration to ASCII for email addresses: letter, then its Latin spelling.
_CYRILLIC_LATIN = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяäöüßæøł",
    "a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch _ y _ e yu ya "
    "ae oe ue ss ae o l",
)
_GREEK_LATIN = ("αβγδεζηθικλμνξοπρσςτυφχψω", "a v g d e z i th i k l m n x o p r s s t y f ch ps o")
_CYRILLIC = dict(zip(_CYRILLIC_LATIN[0], _CYRILLIC_LATIN[1].split(), strict=True))
_GREEK = dict(zip(_GREEK_LATIN[0], _GREEK_LATIN[1].split(), strict=True))
# brand: (price-list currency, {(name, minor units, interval): weight})
_PLANS = {
    "northwind": ("EUR", {("Starter", 1900, "month"): 5, ("Team", 4900, "month"): 4,
                          ("Business (annual)", 49000, "year"): 2}),
    "kangaroo": ("AUD", {("Kit of the Month", 3900, "month"): 5,
                         ("Explorer Box (annual)", 39900, "year"): 1}),
}  # fmt: skip
_PRODUCTS = {
    "northwind": ("EUR", {("Extra storage 100 GB", 900): 6, ("Priority support, 1 month", 2900): 4,
                          ("5 additional seats", 2500): 4, ("API overage, 1M requests", 1200): 3,
                          ("Data migration service", 19000): 1,
                          ("Onboarding workshop (half day)", 45000): 1}),
    "kangaroo": ("AUD", {("Bushwalker Hydration Kit", 8995): 4, ("Reef Snorkel Kit", 12900): 3,
                         ("Campfire Cooking Kit", 6450): 4, ("Junior Science Kit", 3495): 5,
                         ("Outback First-Aid Kit", 5995): 3, ("Beach Cricket Set", 4500): 2}),
}  # fmt: skip
_RATE_MILLI = {"EUR": 1000, "USD": 1080, "GBP": 860, "AUD": 1650, "JPY": 160000}  # per EUR
_PAY_STATUS = {
    "stripe": {
        PS.SUCCEEDED: 88,
        PS.FAILED: 6,
        PS.REQUIRES_ACTION: 2,
        PS.PENDING: 1,
        PS.CANCELED: 3,
    },
    "paypal": {PS.SUCCEEDED: 90, PS.FAILED: 5, PS.PENDING: 4, PS.CANCELED: 1},
}
_REFUND_REASONS = ("requested_by_customer", "duplicate", "Item arrived damaged", "Downgraded plan")
_BRANDS: dict[str, dict[str, Any]] = {
    "northwind": dict(
        slug="northwind", name="Northwind Cloud", legal_name="Northwind Cloud GmbH",
        address="Friedrichstraße 123\n10117 Berlin\nGermany", country="DE",
        tax_registrations=[{"scheme": "eu_vat", "country": "DE", "number": "DE136695976"},
                           {"scheme": "eu_oss", "country": "DE", "number": "DE136695976"}],
        email_from="billing@northwind.example.com", primary_color="#0b3954",
        accent_color="#00a6a6", locale="de", default_currency="EUR",
        footer="Northwind Cloud GmbH · Friedrichstraße 123 · 10117 Berlin · "
               "Amtsgericht Charlottenburg HRB 123456 B · Geschäftsführerin: Anna Schmidt",
        legal_text="For customers with a valid EU VAT id the VAT is reverse charged (Art. 196 "
                   "Directive 2006/112/EC). VAT on other EU sales is declared under the OSS.",
    ),
    "kangaroo": dict(
        slug="kangaroo-kits", name="Kangaroo Kits", legal_name="Kangaroo Kits Pty Ltd",
        address="12 Wattle Street\nFitzroy VIC 3065\nAustralia", country="AU",
        tax_registrations=[{"scheme": "au_gst", "country": "AU", "number": "51824753556"}],
        email_from="orders@kangarookits.example.net", primary_color="#2f4f2f",
        accent_color="#e07a1f", locale="en", default_currency="AUD",
        footer="Kangaroo Kits Pty Ltd · ABN 51 824 753 556 · 12 Wattle Street, Fitzroy VIC 3065",
        legal_text="Tax invoice. Prices include GST where applicable. Our goods come with "
                   "guarantees that cannot be excluded under the Australian Consumer Law.",
    ),
}  # fmt: skip
BRAND_SLUGS = tuple(spec["slug"] for spec in _BRANDS.values())


@dataclass(frozen=True)
class DemoSummary:
    """Row counts belonging to the demo brands, so the CLI can say what the demo holds."""

    brands: int
    customers: int
    payments: int
    refunds: int
    subscriptions: int
    invoices: int


@dataclass
class _Customer:
    email: str
    name: str
    country: str
    locale: str
    address: str
    brand: str
    currency: str
    tax_id: str | None
    card: tuple[str, str]  # brand, last4: one card per customer, as in real life
    invoice_prefix: str  # Stripe numbers invoices per customer: PREFIX-0001
    ext: dict[str, str] = field(default_factory=dict)  # account name -> gateway customer id


@dataclass
class _Group:
    """Items applied in this order on one account: invoice, then payments, then refunds."""

    at: datetime
    account: str
    items: list[Item]

    @property
    def payments(self) -> int:
        return sum(isinstance(i, GatewayPayment) for i in self.items)


def _ascii(text: str) -> str:
    """An email local part: Cyrillic and Greek transliterated, accents dropped, [a-z0-9] only."""
    text = "".join(_CYRILLIC.get(ch, ch) for ch in text.lower())  # before NFKD splits "й"
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    text = "".join(_GREEK.get(ch, ch) for ch in text.replace("ου", "ou"))  # noqa: RUF001
    return "".join(ch for ch in text if ch in string.ascii_lowercase + string.digits)


def _add_months(at: datetime, months: int) -> datetime:
    """Calendar months later; callers keep the day <= 28 so every month has it."""
    m = at.month - 1 + months
    return at.replace(year=at.year + m // 12, month=m % 12 + 1)


def _price(base: int, base_currency: str, currency: str) -> int:
    """A list price in ``currency``, integer maths only, rounded to whole units (JPY: 100 yen).

    Both cases round to 100 minor units, which is why JPY (exponent 0) comes
    out as e.g. 4800 and never as 480000.
    """
    if currency == base_currency:
        return base
    num = base * _RATE_MILLI[currency] * 10 ** exponent(currency)
    den = _RATE_MILLI[base_currency] * 10 ** exponent(base_currency)
    return max(100, (num // den + 50) // 100 * 100)


class _Generator:
    """Plans the whole demo as gateway dataclasses before anything touches the database.

    Planning first makes the exact payment count easy to hit, keeps all
    randomness in one fixed order (determinism) and lets invoice numbers be
    assigned in date order.
    """

    def __init__(self, seed: int, anchor: datetime) -> None:
        self.rng = random.Random(seed)
        self.anchor = anchor.astimezone(UTC).replace(microsecond=0)
        self.start = self.anchor - 365 * _DAY
        self.prices: dict[tuple[str, str], str] = {}

    def pick(self, weights: Mapping[T, float]) -> T:
        return self.rng.choices(list(weights), list(weights.values()))[0]

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def ext_id(self, account: str, stripe_prefix: str) -> str:
        """Stripe: ``pi_``/``re_`` + 24 base62; PayPal capture/refund: 17 upper-case alnum."""
        if account.endswith("stripe"):
            return f"{stripe_prefix}_{self.chars(_B62, 24)}"
        return self.chars(_UPPER, 17)

    def between(self, lo: datetime, hi: datetime) -> datetime:
        return lo + timedelta(seconds=self.rng.randint(0, max(0, int((hi - lo).total_seconds()))))

    def customers(self, count: int) -> list[_Customer]:
        codes, weights = list(_COUNTRIES), {c: spec[1] for c, spec in _COUNTRIES.items()}
        dual = set(self.rng.sample(range(count), round(count * 0.15)))
        used: set[str] = set()
        out = []
        for i in range(count):
            # Every country once before weighting, so small demos still show them all.
            country = codes[i] if i < len(codes) else self.pick(weights)
            given, family = (
                self.rng.choice(s.split()) for s in _NAMES[_COUNTRIES[country][2]].split("|")
            )
            family = family.replace("_", " ")
            local = f"{_ascii(given)}.{_ascii(family)}"
            domain = self.rng.choice(["com", "org", "net"])  # reserved example domains only
            email, n = f"{local}@example.{domain}", 1
            while email in used:  # one address per person, or two people would become one
                n += 1
                email = f"{local}{n}@example.{domain}"
            used.add(email)
            brand = "kangaroo" if country in ("AU", "NZ") else "northwind"
            if country in ("GB", "US", "JP") and self.rng.random() < 0.35:
                brand = "kangaroo"
            currency = {"GB": "GBP", "US": "USD", "JP": "JPY"}.get(
                country, "AUD" if brand == "kangaroo" else "EUR"
            )
            card = self.pick(
                {"visa": 55, "mastercard": 30, "amex": 10, "jcb": 20 if country == "JP" else 0}
            )
            locale, _, _, street, _ = _COUNTRIES[country]
            address = street.format(n=self.rng.randint(1, 120))
            c = _Customer(
                email,
                f"{given} {family}",
                country,
                locale,
                address,
                brand,
                currency,
                self.tax_id(country),
                (card, self.chars(string.digits, 4)),
                self.chars(_UPPER, 8),
            )
            paypal_share = 40 if brand == "kangaroo" else 25
            gateways = (
                ["stripe", "paypal"]
                if i in dual
                else [self.pick({"stripe": 100 - paypal_share, "paypal": paypal_share})]
            )
            for gw in gateways:  # Stripe cus_ + 14 base62; PayPal payer id: 13 upper-case alnum
                c.ext[f"{brand}-{gw}"] = (
                    f"cus_{self.chars(_B62, 14)}" if gw == "stripe" else self.chars(_UPPER, 13)
                )
            out.append(c)
        return out

    def tax_id(self, country: str) -> str | None:
        """A VAT/ABN id in the country's format (checksums not computed) for ~30 % of buyers."""
        pattern = _COUNTRIES[country][4]
        if not pattern or self.rng.random() > 0.3:
            return None
        alphabet = {"#": string.digits, "@": string.ascii_uppercase}
        return "".join(self.chars(alphabet[ch], 1) if ch in alphabet else ch for ch in pattern)

    def payment(
        self,
        c: _Customer,
        account: str,
        amount: int,
        at: datetime,
        status: PaymentStatus,
        description: str,
        invoice: str | None = None,
    ) -> GatewayPayment:
        stripe = account.endswith("stripe")
        return GatewayPayment(
            self.ext_id(account, "pi"),
            c.ext[account],
            status,
            amount,
            c.currency,
            at,
            updated_at=at + timedelta(seconds=self.rng.randint(2, 90)),
            description=description,
            payment_method=c.card[0] if stripe else "paypal",
            card_last4=c.card[1] if stripe else None,
            payer_email=None if stripe else c.email,
            invoice_external_id=invoice,
        )

    def invoice(
        self,
        c: _Customer,
        account: str,
        status: GatewayInvoiceStatus,
        amount: int,
        at: datetime,
        updated: datetime,
        sub: str | None = None,
    ) -> GatewayInvoiceData:
        """Stripe ``in_`` + 24 base62 or PayPal ``INV2-XXXX-XXXX-XXXX-XXXX``; numbered later."""
        if account.endswith("stripe"):
            ext = f"in_{self.chars(_B62, 24)}"
        else:
            ext = "INV2-" + "-".join(self.chars(_UPPER, 4) for _ in range(4))
        paid = status == IS.PAID
        due = None if sub else at + self.rng.choice([14, 30]) * _DAY  # renewals charge at once
        return GatewayInvoiceData(
            ext,
            c.ext[account],
            status,
            amount,
            amount if paid else 0,
            c.currency,
            subscription_external_id=sub,
            due_at=due,
            paid_at=updated if paid else None,
            created_at=at,
            updated_at=updated,
        )

    def subscription(self, c: _Customer) -> tuple[str, GatewaySubscription, list[_Group]]:
        """One subscription as of ``anchor`` plus its renewals inside the demo year."""
        account = min(c.ext, key=lambda a: not a.endswith("stripe"))  # Stripe when there is one
        stripe = account.endswith("stripe")
        base_cur, plans = _PLANS[c.brand]
        plan, base, interval = self.pick(plans)
        amount, step = _price(base, base_cur, c.currency), 12 if interval == "year" else 1
        status = self.pick({SS.ACTIVE: 60, SS.TRIALING: 8, SS.PAST_DUE: 10, SS.CANCELED: 22})
        ext = f"sub_{self.chars(_B62, 24)}" if stripe else f"I-{self.chars(_UPPER, 12)}"
        key = (account, f"{plan}/{c.currency}")
        if key not in self.prices:
            self.prices[key] = (
                f"price_{self.chars(_B62, 24)}" if stripe else f"P-{self.chars(_UPPER, 24)}"
            )
        groups: list[_Group] = []
        canceled_at = None
        if status == SS.TRIALING:  # 14-day trial, nothing billed yet
            created = self.between(self.anchor - 13 * _DAY, self.anchor - _DAY)
            period_end, updated = created + 14 * _DAY, created
        else:
            created = self.between(self.anchor - 540 * _DAY, self.anchor - 35 * _DAY)
            created = created.replace(day=min(created.day, 28))
            ends = self.anchor
            if status == SS.CANCELED:
                canceled_at = ends = self.between(created + 20 * _DAY, self.anchor - _DAY)
            k, updated = 0, created
            while (at := _add_months(created, k * step)) < ends:
                k += 1
                last = _add_months(created, k * step) >= ends
                failing = last and (
                    status == SS.PAST_DUE or (status == SS.CANCELED and self.rng.random() < 0.4)
                )
                if at >= self.start:
                    groups.append(self.renewal(c, account, ext, plan, amount, at, failing, status))
                    updated = groups[-1].at
            period_end = _add_months(created, k * step)
        sub = GatewaySubscription(
            ext,
            c.ext[account],
            status,
            plan,
            amount,
            c.currency,
            interval,
            self.prices[key],
            current_period_end=period_end,
            canceled_at=canceled_at,
            created_at=created,
            cancel_at_period_end=status == SS.ACTIVE and self.rng.random() < 0.2,
            updated_at=canceled_at or updated,
        )
        return account, sub, groups

    def renewal(
        self,
        c: _Customer,
        account: str,
        sub: str,
        plan: str,
        amount: int,
        at: datetime,
        failing: bool,
        status: SubscriptionStatus,
    ) -> _Group:
        """A paid renewal, or (``failing``) declines leaving it open, void or uncollectible."""
        tries = [min(at + timedelta(hours=1), self.anchor - timedelta(seconds=1))]
        if failing or self.rng.random() < 0.08:  # a decline, retried by dunning three days later
            tries += [t for t in [tries[0] + 3 * _DAY] if t < self.anchor]
        desc = f"{plan} subscription"
        payments = [self.payment(c, account, amount, t, PS.FAILED, desc) for t in tries]
        inv_status = IS.PAID
        if not failing:
            payments[-1] = replace(payments[-1], status=PS.SUCCEEDED)
        elif status == SS.PAST_DUE:
            inv_status = IS.OPEN
        else:
            inv_status = self.pick({IS.VOID: 1, IS.UNCOLLECTIBLE: 1})
        if not account.endswith("stripe"):  # PayPal subscriptions bill without invoices
            return _Group(at, account, list(payments))
        invoice = self.invoice(c, account, inv_status, amount, at, tries[-1], sub=sub)
        payments = [replace(p, invoice_external_id=invoice.external_id) for p in payments]
        return _Group(at, account, [invoice, *payments])

    def sent_invoice(self, c: _Customer, overdue: bool, budget: int) -> _Group:
        """A sent invoice with payment terms (Stripe send_invoice, PayPal Invoicing)."""
        account = self.rng.choice(list(c.ext))
        base_cur, products = _PRODUCTS[c.brand]
        name, base = self.rng.choice(list(products))
        amount = _price(base, base_cur, c.currency) * self.rng.choice([1, 2, 5])
        status = self.pick({IS.OPEN: 30, IS.PAID: 50, IS.VOID: 10, IS.UNCOLLECTIBLE: 10})
        if overdue or (status == IS.PAID and budget <= 0):
            status = IS.OPEN
        if status == IS.OPEN:  # sent within the last ~10 weeks; `overdue` forces a past due date
            latest = self.anchor - (31 if overdue else 2) * _DAY
            at = self.between(latest - 40 * _DAY, latest)
            return _Group(at, account, [self.invoice(c, account, status, amount, at, at)])
        if status == IS.UNCOLLECTIBLE:  # written off two months after the due date
            at = self.between(self.start, self.anchor - 120 * _DAY)
            return _Group(
                at, account, [self.invoice(c, account, status, amount, at, at + 90 * _DAY)]
            )
        at = self.between(self.start, self.anchor - 20 * _DAY)
        updated = self.between(at + _DAY, at + 14 * _DAY)
        invoice = self.invoice(c, account, status, amount, at, updated)
        if status == IS.VOID:
            return _Group(at, account, [invoice])
        pay = self.payment(c, account, amount, updated, PS.SUCCEEDED, name, invoice.external_id)
        return _Group(at, account, [invoice, pay])

    def one_off(self, c: _Customer) -> _Group:
        """A one-off charge: a SaaS add-on at Northwind, a web-shop order at Kangaroo Kits."""
        account = self.rng.choice(list(c.ext))
        base_cur, products = _PRODUCTS[c.brand]
        if c.brand == "northwind":
            desc, base = self.pick(products)
            amount = _price(base, base_cur, c.currency)
        else:
            lines = self.rng.sample(list(products), self.rng.randint(1, 3))
            qty = [self.rng.choice([1, 1, 1, 2]) for _ in lines]
            shipping = {"AU": 995, "NZ": 1995}.get(c.country, 2995)
            amount = _price(shipping, base_cur, c.currency) + sum(
                q * _price(p[1], base_cur, c.currency) for p, q in zip(lines, qty, strict=True)
            )
            items = ", ".join(f"{p[0]} x {q}" for p, q in zip(lines, qty, strict=True))
            desc = f"Order #KK-{self.rng.randint(10000, 99999)}: {items}"
        status = self.pick(_PAY_STATUS[account.rsplit("-", 1)[1]])
        # Denser towards anchor (a growing business); unfinished payments are recent.
        at = self.start + (365 * _DAY - timedelta(seconds=1)) * self.rng.triangular(0, 1, 1)
        if status in (PS.PENDING, PS.REQUIRES_ACTION):
            at = self.between(self.anchor - 3 * _DAY, self.anchor - timedelta(minutes=10))
        at = at.replace(microsecond=0)
        return _Group(at, account, [self.payment(c, account, amount, at, status, desc)])

    def refund(self, group: _Group, payment: GatewayPayment) -> None:
        """A full or partial refund (whole units) after its payment and before anchor."""
        amount = payment.amount
        if self.rng.random() < 0.4 and amount > 100:
            amount = self.rng.randint(1, (amount - 1) // 100) * 100
        at = self.between(
            payment.created_at + timedelta(hours=1),
            min(payment.created_at + 30 * _DAY, self.anchor - _DAY),
        )
        group.items.append(
            GatewayRefund(
                self.ext_id(group.account, "re"),
                payment.external_id,
                self.pick({RefundStatus.SUCCEEDED: 95, RefundStatus.PENDING: 5}),
                amount,
                payment.currency,
                at,
                at,
                self.rng.choice(_REFUND_REASONS),
            )
        )

    def ledger(
        self, custs: list[_Customer], payments: int
    ) -> tuple[list[tuple[str, GatewaySubscription]], list[_Group]]:
        """Subscriptions, and groups in date order holding exactly ``payments`` payments."""
        subs, renewals = [], []
        for c in self.rng.sample(custs, round(len(custs) * 0.6)):
            account, sub, history = self.subscription(c)
            subs.append((account, sub))
            renewals.extend(history)
        groups, left = [], payments * 45 // 100  # renewals get at most 45 % of the payments
        for g in sorted(renewals, key=lambda g: g.at, reverse=True):  # keep the newest
            if g.payments <= left:
                groups.append(g)
                left -= g.payments
        left += payments - payments * 45 // 100
        b2b = [c for c in custs if c.brand == "northwind" or c.tax_id] or custs
        for i in range(max(3, payments // 25)):
            groups.append(self.sent_invoice(self.rng.choice(b2b), i == 0, left))
            left -= groups[-1].payments
        weights = {i: self.rng.paretovariate(1.5) for i in range(len(custs))}  # a few big buyers
        groups += [self.one_off(custs[self.pick(weights)]) for _ in range(left)]
        groups.sort(key=lambda g: (g.at, g.account, g.items[0].external_id))
        paid = [(g, p) for g in groups for p in g.items if isinstance(p, GatewayPayment)]
        paid = [
            (g, p)
            for g, p in paid
            if p.status == PS.SUCCEEDED and p.created_at < self.anchor - 2 * _DAY
        ]
        for g, p in self.rng.sample(paid, round(len(paid) * 0.06)):  # ~6 %, none in the last 2 days
            self.refund(g, p)
        self._number_invoices(groups, custs)
        return subs, groups

    def _number_invoices(self, groups: list[_Group], custs: list[_Customer]) -> None:
        """Numbers in date order: Stripe per customer (``A1B2C3D4-0001``), PayPal per account."""
        by_ext = {ext: c for c in custs for ext in c.ext.values()}
        counters: dict[str, int] = {}
        for g in groups:
            for n, item in enumerate(g.items):
                if isinstance(item, GatewayInvoiceData) and item.customer_external_id:
                    stripe = g.account.endswith("stripe")
                    key = by_ext[item.customer_external_id].invoice_prefix if stripe else g.account
                    counters[key] = counters.get(key, 0) + 1
                    number = f"{key}-{counters[key]:04d}" if stripe else f"{counters[key]:04d}"
                    g.items[n] = replace(item, number=number)


def _create_brands(session: Session) -> dict[str, GatewayAccount]:
    """Both brands with receipt/invoice/credit-note series and a Stripe and a PayPal account."""
    accounts = {}
    for key, spec in _BRANDS.items():
        brand = Brand(**spec)
        session.add(brand)
        session.flush()
        assert brand.id is not None
        prefix = {"northwind": "NW", "kangaroo": "KK"}[key]
        for kind, suffix in zip(DocumentKind, ("R", "INV", "CN"), strict=True):
            series = NumberSeries(
                brand_id=brand.id, series=kind, kind=kind, prefix=f"{prefix}-{suffix}"
            )
            session.add(series)
        for gateway in (GatewayKind.STRIPE, GatewayKind.PAYPAL):
            name = f"{key}-{gateway.value}"
            accounts[name] = GatewayAccount(
                brand_id=brand.id, gateway=gateway, name=name, live_mode=False
            )
            session.add(accounts[name])
    session.flush()
    return accounts


def _summary(session: Session) -> DemoSummary:
    """Counts of rows that belong to the demo brands' gateway accounts."""
    brand_ids = session.exec(select(Brand.id).where(col(Brand.slug).in_(BRAND_SLUGS))).all()
    accounts = session.exec(
        select(GatewayAccount).where(col(GatewayAccount.brand_id).in_(brand_ids))
    ).all()
    ids = [a.id for a in accounts]
    customers = select(func.count(func.distinct(CustomerIdentity.customer_id))).where(
        col(CustomerIdentity.namespace).in_([account_namespace(a) for a in accounts])
    )

    def count(model: type[Payment | Refund | Subscription | GatewayInvoice]) -> int:
        return session.exec(
            select(func.count()).select_from(model).where(col(model.account_id).in_(ids))
        ).one()

    counts = [count(Payment), count(Refund), count(Subscription), count(GatewayInvoice)]
    return DemoSummary(len(brand_ids), session.exec(customers).one(), *counts)


def seed_demo(
    factory: sessionmaker[Session],
    *,
    seed: int = 2026,
    customers: int = 200,
    payments: int = 2000,
    anchor: datetime = datetime(2026, 11, 1, tzinfo=UTC),
    progress: Callable[[int, int], None] | None = None,
) -> DemoSummary:
    """Seed two brands with customers, subscriptions, invoices, payments and refunds.

    Idempotent: when a demo brand exists nothing is added and the existing
    counts are returned. Customers and subscriptions are one transaction;
    payments (with their invoices and refunds) are committed every
    :data:`BATCH` payments, calling ``progress(done, payments)`` after each
    commit. An interrupted run keeps what it committed, so empty the database
    before seeding again.
    """
    if customers < 1 or payments < 0:
        raise ValueError("the demo needs at least one customer and no negative payment count")
    with factory() as session:
        if session.exec(select(Brand.id).where(col(Brand.slug).in_(BRAND_SLUGS))).first():
            return _summary(session)
    gen = _Generator(seed, anchor)
    custs = gen.customers(customers)
    subs, groups = gen.ledger(custs, payments)
    with factory() as session:
        accounts = _create_brands(session)
        for c in custs:
            for name, ext in c.ext.items():  # the second gateway finds the first by email
                data = GatewayCustomer(ext, c.email, c.name, c.country, c.address, c.locale)
                row = link_gateway_customer(session, accounts[name], data)
            row.tax_id = c.tax_id  # GatewayCustomer has no tax id; an agent would add it
            session.add(row)
        for name, sub in subs:
            apply_subscription(session, accounts[name], sub)
        session.commit()
        account_ids = {name: a.id for name, a in accounts.items()}
    done, batch, reported = 0, 0, -1
    session = mark_backfill(factory())  # history: no documents issued or emailed for it
    try:
        for i, group in enumerate(groups):
            account = session.get(GatewayAccount, account_ids[group.account])
            assert account is not None
            for item in group.items:
                if isinstance(item, GatewayInvoiceData):
                    apply_invoice(session, account, item)
                elif isinstance(item, GatewayPayment):
                    apply_payment(session, account, item)
                else:
                    apply_refund(session, account, item)
            batch += group.payments
            if batch >= BATCH or i == len(groups) - 1:
                session.commit()
                session.close()  # a fresh identity map per batch keeps memory flat
                session = mark_backfill(factory())
                done, batch = done + batch, 0
                if progress and done != reported:  # trailing unpaid invoices add no payments
                    progress(done, payments)
                    reported = done
        return _summary(session)
    finally:
        session.close()
