"""Agent-facing reads at scale: the ticket page and ``/api/v1/context`` on a big ledger.

Run: ``python -m bench.admin [--customers 100000] [--payments 1000000] [--samples 300]``

A throwaway PostgreSQL database is migrated and filled with SQL
``generate_series`` inserts (minutes, not hours): one brand and Stripe
account, ``--customers`` customers with an email identity, ``--payments``
payments spread over them (1 % partially refunded), a subscription for one
customer in ten, and 1,000 tickets each holding one customer message with
its stored billing-context snapshot; then ``ANALYZE``.

Measured in this process, one request at a time, each on a random customer
or ticket (Flask's WSGI app called directly, so no HTTP server time):

* **bare indexed SELECT**: the customer by email, then their 10 newest
  payments (two index lookups on a pooled connection) — the floor;
* **/api/v1/context?email=**: what a helpdesk sidebar asks, with an API token;
* **ticket page**: ``/admin/tickets/<id>`` for a logged-in agent (thread,
  attachments, live billing panel, action forms).

Targets (issue): context p99 ≤ 20 ms, ticket page p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import time
from collections.abc import Callable

import sqlalchemy as sa

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
PASSWORD = "bench password 0123456789"

SEED = [
    """INSERT INTO brand (slug, name, legal_name, address, country, tax_registrations,
        email_from, primary_color, accent_color, locale, default_currency, footer, legal_text,
        issue_credit_notes, customer_can_cancel, created_at)
       VALUES ('bench', 'Bench', 'Bench GmbH', '', 'DE', '[]', 'billing@bench.example.com',
        '#111111', '#2563eb', 'en', 'EUR', '', '', true, false, now())""",
    """INSERT INTO gateway_account (brand_id, gateway, name, live_mode, sync_cursor, created_at)
       VALUES (1, 'stripe', 'default', false, '{}', now())""",
    """INSERT INTO customer (name, email, country, address, locale, portal_nonce, created_at)
       SELECT 'Customer ' || g, 'c' || g || '@bench.example.com', 'DE', '', 'en', '', now()
       FROM generate_series(1, :customers) g""",
    """INSERT INTO customer_identity (customer_id, kind, namespace, value, created_at)
       SELECT g, 'email', 'email', 'c' || g || '@bench.example.com', now()
       FROM generate_series(1, :customers) g""",
    """INSERT INTO payment (account_id, customer_id, external_id, status, amount, amount_refunded,
        currency, description, payment_method, card_last4, gateway_created_at, created_at,
        updated_at)
       SELECT 1, 1 + (g % :customers), 'pi_' || g,
        CASE WHEN g % 100 = 0 THEN 'partially_refunded' ELSE 'succeeded' END,
        1000 + g % 9000, CASE WHEN g % 100 = 0 THEN 500 ELSE 0 END, 'EUR', 'Pro plan', 'visa',
        '4242', now() - (g || ' minutes')::interval, now(), now()
       FROM generate_series(1, :payments) g""",
    """INSERT INTO subscription (account_id, customer_id, external_id, status, plan_name, amount,
        currency, interval, cancel_at_period_end, created_at, updated_at)
       SELECT 1, g, 'sub_' || g, 'active', 'Pro', 1900, 'EUR', 'month', false, now(), now()
       FROM generate_series(1, :customers, 10) g""",
    """INSERT INTO ticket (brand_id, customer_id, subject, status, requester_email,
        unverified_sender, created_at, updated_at)
       SELECT 1, 1 + (g * 97 % :customers), 'Question ' || g, 'open',
        'c' || (1 + (g * 97 % :customers)) || '@bench.example.com', false, now(), now()
       FROM generate_series(1, 1000) g""",
]


def seed(url: str, customers: int, payments: int) -> None:
    from billbox.billing_context import snapshot
    from billbox.db import make_engine, session_factory
    from billbox.models import MessageDirection, Role, Ticket, TicketMessage
    from billbox.users import create_user

    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(sa.text(statement), {"customers": customers, "payments": payments})
    factory = session_factory(engine)
    with factory() as s:
        for ticket in s.exec(sa.select(Ticket)).scalars():  # type: ignore[call-overload]
            s.add(TicketMessage(ticket_id=ticket.id, direction=MessageDirection.INBOUND,
                                author=ticket.requester_email, body_text="Why two charges?",
                                billing_context=snapshot(s, ticket.customer_id)))  # fmt: skip
        create_user(s, "agent@bench.example.com", Role.AGENT, PASSWORD)
        s.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


def timed(fn: Callable[[], object], samples: int) -> list[float]:
    for _ in range(min(20, samples)):
        fn()
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    from pydantic import SecretStr

    from billbox.api_tokens import create_token
    from billbox.db import make_engine, session_factory
    from billbox.models import Role
    from billbox.settings import load_settings
    from billbox.testing import throwaway_postgres
    from web import create_app

    server = os.environ.get("BILLBOX_TEST_DATABASE_URL", PG_DEFAULT)
    with throwaway_postgres(server, "billbox_bench_admin") as url:
        from billbox.migrate import upgrade

        upgrade(url)
        started = time.perf_counter()
        seed(url, args.customers, args.payments)
        print(f"seeded {args.customers:,} customers, {args.payments:,} payments "
              f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
        settings = load_settings(database_url=url, broker_url="stub", log_level="WARNING",
                                 secret_key=SecretStr("b" * 32), public_url="https://bench.test",
                                 _env_file=None)  # fmt: skip
        engine = make_engine(url)
        with session_factory(engine)() as s:
            token = create_token(s, "bench", Role.AGENT).secret
            s.commit()
        app = create_app(settings, engine=engine, build_worker=False)
        client = app.test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        page = client.get("/admin/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
        client.post("/admin/login", data={"email": "agent@bench.example.com", "password": PASSWORD,
                                          "csrf_token": csrf})  # fmt: skip
        rng = random.Random(7)
        auth = {"Authorization": f"Bearer {token}"}

        def bare() -> None:
            n = rng.randint(1, args.customers)
            with engine.connect() as conn:
                cid = conn.execute(sa.text("SELECT id FROM customer WHERE email = :e"),
                                   {"e": f"c{n}@bench.example.com"}).scalar_one()  # fmt: skip
                conn.execute(sa.text("SELECT id, amount FROM payment WHERE customer_id = :c "
                                     "ORDER BY gateway_created_at DESC LIMIT 10"),
                             {"c": cid}).all()  # fmt: skip

        def context() -> None:
            n = rng.randint(1, args.customers)
            response = client.get(f"/api/v1/context?email=c{n}@bench.example.com", headers=auth)
            assert response.status_code == 200, response.status_code

        def ticket_page() -> None:
            response = client.get(f"/admin/tickets/{rng.randint(1, 1000)}")
            assert response.status_code == 200, response.status_code

        rows = []
        for name, fn, target in (("bare indexed SELECT", bare, None),
                                 ("/api/v1/context", context, 20.0),
                                 ("ticket page", ticket_page, 50.0)):  # fmt: skip
            values = timed(fn, args.samples)
            p99 = pct(values, 0.99)
            verdict = (
                ""
                if target is None
                else f"p99 <= {target:.0f} ms: " + ("met" if p99 <= target else "missed")
            )
            rows.append((name, statistics.median(values), p99, verdict))
        engine.dispose()
    print("| read | p50 ms | p99 ms | target |\n|---|--:|--:|---|")
    for name, p50, p99, verdict in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
