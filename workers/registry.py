"""Which function handles which job kind; the one table a new kind is added to."""

from __future__ import annotations

from billbox.documents import ISSUE_DOCUMENT_JOB
from billbox.documents.issue import DocumentConfig
from billbox.documents.jobs import issue_document, make_issue_document
from billbox.jobs import NOOP_JOB, Handler, noop
from billbox.settings import Settings
from billbox.webhooks import WEBHOOK_JOB, process_webhook
from mailbridge.agent_reply import SEND_OUTBOUND_JOB, make_send_outbound
from mailbridge.classify import ClassifyContext
from mailbridge.helpdesks.push import NOTE_JOB, PUSH_JOB, make_note_handler, make_push_handler
from mailbridge.pipeline import INBOUND_JOB, PipelineConfig, make_process_inbound, process_inbound
from mailbridge.portal_mail import PORTAL_LINK_JOB, make_send_link
from mailbridge.send import SEND_DOCUMENT_JOB, mailer_config, make_send_document
from mailbridge.trust import TrustContext


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The inbound pipeline's settings: our reply domain marks our own mail (loops)."""
    return PipelineConfig(
        classify=ClassifyContext(
            our_message_id_domain=settings.reply_domain, loop_marker="billbox"
        ),
        secret=settings.secret(),
        reply_domain=settings.reply_domain,
        trust=TrustContext(trusted_authserv_ids=settings.trusted_authserv_id_set),
    )


def document_config(settings: Settings) -> DocumentConfig:
    """Documents link to the public URL and may read ``var/media`` besides the templates."""
    return DocumentConfig(
        public_url=settings.effective_public_url, media_dir=settings.var_dir / "media"
    )


def default_handlers(settings: Settings | None = None) -> dict[str, Handler]:
    """Every job kind's handler; without settings, defaults fit for tests."""
    inbound = (
        process_inbound if settings is None else make_process_inbound(pipeline_config(settings))
    )
    handlers: dict[str, Handler] = {
        NOOP_JOB: noop,
        INBOUND_JOB: inbound,
        WEBHOOK_JOB: process_webhook,
        ISSUE_DOCUMENT_JOB: (
            issue_document if settings is None else make_issue_document(document_config(settings))
        ),
        **({} if settings is None else helpdesk_handlers(settings)),
    }
    if settings is not None:  # sending needs the secret key and the relay
        mailer = mailer_config(settings)
        handlers[SEND_DOCUMENT_JOB] = make_send_document(mailer)
        handlers[PORTAL_LINK_JOB] = make_send_link(mailer, settings.portal_link_days)
        handlers[SEND_OUTBOUND_JOB] = make_send_outbound(mailer)
    return handlers


def helpdesk_handlers(settings: Settings) -> dict[str, Handler]:
    """Pushing ticket messages to external helpdesks needs the secret key (sealed tokens)."""
    return {
        PUSH_JOB: make_push_handler(settings.secret(), settings.reply_domain),
        NOTE_JOB: make_note_handler(settings.secret(), settings.reply_domain),
    }
