"""Everything email: accept (SMTP, IMAP), store, parse, and later classify and thread.

The public names are re-exported here; modules starting with ``_`` are
private. Servers take "what to do with a stored message" as a callable so
they can be tested without a broker.
"""

from mailbridge.imap import (
    ImapAuthError,
    ImapPoller,
    MailboxConfig,
    PollerOptions,
    parse_imap_url,
    run_pollers,
)
from mailbridge.inbound_store import store_inbound
from mailbridge.parse import ParsedMessage, ParseFailure, parse_message
from mailbridge.pipeline import INBOUND_JOB, process_inbound
from mailbridge.smtp import InboundSMTPHandler, RecipientPolicy, start_smtp_server

__all__ = [
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
