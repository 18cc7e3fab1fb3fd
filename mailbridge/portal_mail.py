"""The "email me a link" message: a customer's signed billing-page link, sent on request.

Asked for on ``/billing/`` by typing an address; the page answers the same
whether or not the address is known, and this job only runs for known
customers, one email per brand they have billing history with. A repeated
email is harmless (it carries a fresh link), so this is at-least-once and
keeps no outbound row.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlmodel import Session

from billbox.errors import PermanentError
from billbox.jobs import Handler, JobContext, submit
from billbox.models import Brand, Customer, utcnow
from mailbridge.compose import new_message_id
from mailbridge.relay import RelayRejectedError, deliver
from mailbridge.send import MailerConfig, billing_link

PORTAL_LINK_JOB = "portal.send_link"

WORDS = {
    "en": ("Your billing page at {brand}", "Hello,\n\nhere is the link to your billing page at "
           "{brand}: invoices, receipts, payment details and questions.\n\n{link}\n\nThe link is "
           "personal and expires in {days} days. If you did not ask for it, ignore this email.\n"),
    "es": ("Su página de facturación en {brand}", "Hola:\n\neste es el enlace a su página de "
           "facturación en {brand}: facturas, recibos, datos de pago y consultas.\n\n{link}\n\n"
           "El enlace es personal y caduca en {days} días. Si no lo ha pedido, ignore este "
           "correo.\n"),
    "de": ("Ihre Abrechnungsseite bei {brand}", "Guten Tag,\n\nhier ist der Link zu Ihrer "
           "Abrechnungsseite bei {brand}: Rechnungen, Quittungen, Zahlungsdaten und Fragen.\n\n"
           "{link}\n\nDer Link ist persönlich und läuft in {days} Tagen ab. Falls Sie ihn nicht "
           "angefordert haben, ignorieren Sie diese E-Mail.\n"),
    "fr": ("Votre page de facturation chez {brand}", "Bonjour,\n\nvoici le lien vers votre page "
           "de facturation chez {brand} : factures, reçus, moyens de paiement et questions.\n\n"
           "{link}\n\nLe lien est personnel et expire dans {days} jours. Si vous ne l'avez pas "
           "demandé, ignorez cet e-mail.\n"),
}  # fmt: skip


def queue_link_emails(session: Session, customer_id: int, brand_ids: list[int]) -> None:
    for brand_id in brand_ids:
        submit(session, PORTAL_LINK_JOB, {"customer_id": customer_id, "brand_id": brand_id})


def compose_link_email(
    customer: Customer, brand: Brand, link: str, days: int, message_id: str
) -> EmailMessage:
    language = (customer.locale or brand.locale or "en")[:2].lower()
    subject, body = WORDS.get(language, WORDS["en"])
    message = EmailMessage()
    message["From"] = formataddr((brand.name, brand.email_from))
    message["To"] = formataddr((customer.name, customer.email))
    message["Subject"] = subject.format(brand=brand.name)
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body.format(brand=brand.name, link=link, days=days))
    return message


def make_send_link(config: MailerConfig, link_days: int) -> Handler:
    def send_link(session: Session, job: JobContext) -> None:
        customer = session.get(Customer, int(job.payload["customer_id"]))
        brand = session.get(Brand, int(job.payload["brand_id"]))
        if customer is None or brand is None:
            raise PermanentError("the customer or brand no longer exists")
        if config.relay is None:
            raise PermanentError("BILLBOX_SMTP_RELAY is not set: billing links cannot be emailed")
        if not brand.email_from:
            raise PermanentError(f"brand {brand.slug!r} has no sender address (email_from)")
        link = billing_link(session, config, customer, brand)
        if link is None:
            raise PermanentError("BILLBOX_PUBLIC_URL is needed to build billing links")
        message = compose_link_email(
            customer, brand, link, link_days, new_message_id(config.compose.reply_domain)
        )
        session.commit()  # the nonce, if new; then talk to the relay with no lock held
        try:
            deliver(config.relay, brand.email_from, customer.email, message.as_bytes())
        except RelayRejectedError as exc:
            raise PermanentError(f"the relay refused the billing link email: {exc}") from exc

    return send_link
