"""Everything email: accept (SMTP, IMAP), store, parse, and later classify and thread.

The public names are re-exported here; modules starting with ``_`` are
private. Servers take "what to do with a stored message" as a callable so
they can be tested without a broker.
"""

from mailbridge.classify import Classification, ClassifyContext, classify
from mailbridge.group_commit import GroupCommitStore
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
from mailbridge.pipeline import INBOUND_JOB, PipelineConfig, make_process_inbound, process_inbound
from mailbridge.reply import ExtractedReply, extract_reply
from mailbridge.sanitize import sanitize_html
from mailbridge.smtp import InboundSMTPHandler, RecipientPolicy, start_smtp_server
from mailbridge.thread import ThreadDecision, decide_thread
from mailbridge.tokens import TokenClaims, make_reply_token, read_reply_token, reply_address

__all__ = [
    "INBOUND_JOB",
    "Classification",
    "ClassifyContext",
    "ExtractedReply",
    "GroupCommitStore",
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
