"""The public surface of the packages is pinned, like httpx's test_exported_members."""

from __future__ import annotations

import billbox.gateways
import mailbridge


def test_mailbridge_exports_exactly_its_public_names():
    """Adding or removing a public name is a deliberate change to this list."""
    assert sorted(mailbridge.__all__) == [
        "Classification",
        "ClassifyContext",
        "ExtractedReply",
        "GroupCommitStore",
        "INBOUND_JOB",
        "ImapAuthError",
        "ImapPoller",
        "InboundSMTPHandler",
        "MailboxConfig",
        "ParseFailure",
        "ParsedMessage",
        "PipelineConfig",
        "PollerOptions",
        "RecipientPolicy",
        "ThreadDecision",
        "TokenClaims",
        "classify",
        "decide_thread",
        "extract_reply",
        "make_process_inbound",
        "make_reply_token",
        "parse_imap_url",
        "parse_message",
        "process_inbound",
        "read_reply_token",
        "reply_address",
        "run_pollers",
        "sanitize_html",
        "start_smtp_server",
        "store_inbound",
    ]
    for name in mailbridge.__all__:
        assert getattr(mailbridge, name) is not None


def test_gateways_export_only_our_own_types():
    """Vendor objects stop at the adapter: the package exports our interface and dataclasses."""
    assert sorted(billbox.gateways.__all__) == [
        "Capability",
        "GatewayActions",
        "GatewayAdapter",
        "GatewayCustomer",
        "GatewayDeclined",
        "GatewayError",
        "GatewayInvoiceData",
        "GatewayLister",
        "GatewayParseError",
        "GatewayPayment",
        "GatewayRefund",
        "GatewaySubscription",
        "GatewayUnavailable",
        "Ignored",
        "ObjectKind",
        "Page",
        "UnsupportedAction",
        "VerifiedEvent",
        "WebhookVerificationError",
    ]
