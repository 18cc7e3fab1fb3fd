"""The public surface of the packages is pinned, like httpx's test_exported_members."""

from __future__ import annotations

import billbox.gateways
import mailbridge


def test_mailbridge_exports_exactly_its_public_names():
    """Adding or removing a public name is a deliberate change to this list."""
    assert sorted(mailbridge.__all__) == [
        "INBOUND_JOB",
        "ImapAuthError",
        "ImapPoller",
        "InboundSMTPHandler",
        "MailboxConfig",
        "ParseFailure",
        "ParsedMessage",
        "PollerOptions",
        "RecipientPolicy",
        "parse_imap_url",
        "parse_message",
        "process_inbound",
        "run_pollers",
        "start_smtp_server",
        "store_inbound",
    ]
    for name in mailbridge.__all__:
        assert getattr(mailbridge, name) is not None


def test_gateways_export_only_normalised_types():
    """Vendor objects stop at the adapter: the package exports our own dataclasses."""
    assert sorted(billbox.gateways.__all__) == [
        "GatewayCustomer",
        "GatewayInvoiceData",
        "GatewayPayment",
        "GatewayRefund",
        "GatewaySubscription",
    ]
