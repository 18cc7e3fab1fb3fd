"""Threading against the real database: token, In-Reply-To, References, subject tag, new.

Each test builds the rows it needs (brand, customer, document, the receipt
email we sent, tickets) and a raw reply as a mail client would send it, then
asks :func:`decide_thread` where the reply belongs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlmodel import Session, select

from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    Document,
    DocumentKind,
    DocumentState,
    IdentityKind,
    MessageDirection,
    OutboundEmail,
    OutboundState,
    ThreadRule,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from mailbridge.parse import ParsedMessage, parse_message
from mailbridge.thread import (
    ThreadDecision,
    decide_thread,
    link_document_emails,
    normalise_subject,
    subject_tag,
)
from mailbridge.tokens import TokenClaims, make_reply_token, reply_address

SECRET = "test-secret-key-0123456789"
DOMAIN = "reply.billbox.test"
SUPPORT = "billing@shop.example"
CUSTOMER = "ana@example.org"


@dataclass
class World:
    brand: Brand
    customer: Customer
    document: Document
    receipt: OutboundEmail
    token: str

    @property
    def reply_to(self) -> str:
        return reply_address(self.token, DOMAIN)


def make_world(session: Session, *, number: str = "R-2026-000001", customer_email=CUSTOMER):
    """A brand, a customer, a receipt document and the email that carried it (no ticket)."""
    brand = session.exec(select(Brand).where(Brand.slug == "shop")).first() or Brand(
        slug="shop", name="Shop", legal_name="Shop GmbH", country="DE"
    )
    session.add(brand)
    session.flush()
    customer = Customer(name="Ana", email=customer_email)
    session.add(customer)
    session.flush()
    sequence = int(number.rsplit("-", 1)[1])
    document = Document(
        brand_id=brand.id,
        customer_id=customer.id,
        kind=DocumentKind.RECEIPT,
        state=DocumentState.ISSUED,
        series="R",
        sequence=sequence,
        number=number,
        source_key=f"payment:{number}",
        currency="EUR",
    )
    session.add(document)
    session.flush()
    token = make_reply_token(
        SECRET, document_id=document.id, customer_id=customer.id, brand_id=brand.id
    )
    receipt = OutboundEmail(
        brand_id=brand.id,
        customer_id=customer.id,
        document_id=document.id,
        purpose_key=f"receipt:{document.id}",
        state=OutboundState.SENT,
        to_address=customer_email,
        from_address=SUPPORT,
        reply_to=reply_address(token, DOMAIN),
        subject=f"Your receipt {number}",
        message_id=f"<receipt-{document.id}@shop.example>",
    )
    session.add(receipt)
    session.commit()
    return World(brand, customer, document, receipt, token)


def open_ticket(
    session: Session,
    world: World,
    *,
    status: TicketStatus = TicketStatus.OPEN,
    requester: str = CUSTOMER,
    link_receipt: bool = False,
    ticket_id: int | None = None,
) -> Ticket:
    """A ticket for the world's customer; optionally the receipt email is linked to it."""
    ticket = Ticket(
        id=ticket_id,
        brand_id=world.brand.id,
        customer_id=world.customer.id,
        subject="Question about my receipt",
        status=status,
        requester_email=requester,
    )
    session.add(ticket)
    session.flush()
    if link_receipt:
        world.receipt.ticket_id = ticket.id
        session.add(world.receipt)
    session.commit()
    return ticket


def add_ticket_message(session: Session, ticket: Ticket, message_id: str) -> TicketMessage:
    row = TicketMessage(
        ticket_id=ticket.id,
        direction=MessageDirection.INBOUND,
        message_id=message_id,
        thread_rule=ThreadRule.NEW_TICKET,
    )
    session.add(row)
    session.commit()
    return row


def mail(
    *,
    sender: str = CUSTOMER,
    to: str = SUPPORT,
    subject: str = "Re: Your receipt R-2026-000001",
    headers: str = "",
    body: str = "Hello, I have a question.",
) -> ParsedMessage:
    raw = (
        f"From: Ana <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <reply-{abs(hash((sender, to, subject, headers)))}@mail.example>\r\n"
        f"{headers}\r\n{body}\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    return parsed


def decide(session: Session, parsed: ParsedMessage, envelope_to=(SUPPORT,)) -> ThreadDecision:
    return decide_thread(session, parsed, list(envelope_to), secret=SECRET, reply_domain=DOMAIN)


# --- reply token -------------------------------------------------------------


def test_a_reply_to_the_token_address_joins_the_ticket_of_the_receipt(session):
    """The token in RCPT TO names the document; its email's ticket takes the reply."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    decision = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    assert decision.ticket_id == ticket.id
    assert decision.rule == ThreadRule.REPLY_TOKEN
    assert decision.claims == TokenClaims(
        customer_id=world.customer.id, document_id=world.document.id, brand_id=world.brand.id
    )


def test_a_token_in_the_to_header_counts_when_the_envelope_is_a_mailbox(session):
    """IMAP delivery: the envelope is our mailbox, the token is only in To."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    decision = decide(session, mail(to=world.reply_to), envelope_to=[SUPPORT])
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.REPLY_TOKEN)


def test_a_token_upper_cased_by_a_mail_server_still_threads(session):
    """Servers that fold the local part's case do not break threading."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    shouted = world.reply_to.upper()
    decision = decide(session, mail(to=shouted), envelope_to=[shouted])
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.REPLY_TOKEN)


def test_a_first_reply_to_a_receipt_asks_for_a_new_ticket_for_that_customer(session):
    """No ticket yet: ticket_id None, rule reply_token, and the claims name the customer."""
    world = make_world(session)
    decision = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    assert decision.ticket_id is None
    assert decision.rule == ThreadRule.REPLY_TOKEN
    assert decision.claims is not None
    assert decision.claims.customer_id == world.customer.id


def test_after_linking_the_new_ticket_the_next_reply_to_the_receipt_joins_it(session):
    """link_document_emails makes a second reply to the same receipt thread by token."""
    world = make_world(session)
    first = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    ticket = open_ticket(session, world)
    assert first.claims is not None
    assert link_document_emails(session, first.claims, ticket.id) == 1
    session.commit()
    second = decide(
        session, mail(to=world.reply_to, subject="one more thing"), envelope_to=[world.reply_to]
    )
    assert (second.ticket_id, second.rule) == (ticket.id, ThreadRule.REPLY_TOKEN)


def test_linking_leaves_emails_that_already_belong_to_a_ticket_alone(session):
    """A reminder already on a (closed) ticket keeps it; only unlinked emails move."""
    world = make_world(session)
    closed = open_ticket(session, world, status=TicketStatus.CLOSED)
    reminder = OutboundEmail(
        brand_id=world.brand.id,
        customer_id=world.customer.id,
        document_id=world.document.id,
        ticket_id=closed.id,
        purpose_key=f"reminder:{world.document.id}",
        state=OutboundState.SENT,
        to_address=CUSTOMER,
        from_address=SUPPORT,
        reply_to=world.reply_to,
        subject="Reminder",
        message_id="<reminder@shop.example>",
    )
    session.add(reminder)
    session.commit()
    first = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    assert (first.ticket_id, first.rule) == (None, ThreadRule.REPLY_TOKEN)
    assert first.claims is not None
    ticket = open_ticket(session, world)
    assert link_document_emails(session, first.claims, ticket.id) == 1
    session.commit()
    session.refresh(reminder)
    assert reminder.ticket_id == closed.id
    second = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    assert (second.ticket_id, second.rule) == (ticket.id, ThreadRule.REPLY_TOKEN)


def test_a_reply_to_two_receipts_threads_by_the_token_that_has_a_ticket(session):
    """Two reply addresses in To: the first without a ticket, the second with one, wins."""
    unlinked = make_world(session)
    linked = make_world(session, number="R-2026-000002")
    ticket = open_ticket(session, linked, link_receipt=True)
    recipients = [unlinked.reply_to, linked.reply_to]
    parsed = mail(to=", ".join(recipients))
    decision = decide(session, parsed, envelope_to=recipients)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.REPLY_TOKEN)
    assert decision.claims is not None
    assert decision.claims.document_id == linked.document.id


def test_a_reply_from_another_address_of_the_same_customer_threads_by_token(session):
    """The customer answers from work, a new address, and rewrites the subject: token wins."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    parsed = mail(sender="ana.lopez@work.example", to=world.reply_to, subject="VAT number")
    decision = decide(session, parsed, envelope_to=[world.reply_to])
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.REPLY_TOKEN)


def test_a_reply_to_a_closed_ticket_asks_for_a_new_one_and_shows_the_old(session):
    """Closed tickets are final: new ticket for the customer; the closed one is a candidate."""
    world = make_world(session)
    closed = open_ticket(session, world, status=TicketStatus.CLOSED, link_receipt=True)
    decision = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    assert decision.ticket_id is None
    assert decision.rule == ThreadRule.REPLY_TOKEN
    assert (ThreadRule.REPLY_TOKEN, closed.id) in decision.candidates


def test_a_solved_ticket_still_takes_a_reply(session):
    """Solved is not closed: the reply joins it (the caller reopens it)."""
    world = make_world(session)
    solved = open_ticket(session, world, status=TicketStatus.SOLVED, link_receipt=True)
    decision = decide(session, mail(to=world.reply_to), envelope_to=[world.reply_to])
    assert decision.ticket_id == solved.id


def test_a_token_signed_with_another_key_is_ignored(session):
    """A forged token (wrong key) does not thread, and no claims are reported."""
    world = make_world(session)
    open_ticket(session, world, link_receipt=True)
    forged = make_reply_token(
        "someone-elses-secret-key", document_id=world.document.id, customer_id=world.customer.id
    )
    address = reply_address(forged, DOMAIN)
    decision = decide(session, mail(to=address), envelope_to=[address])
    assert decision.rule == ThreadRule.NEW_TICKET
    assert decision.ticket_id is None
    assert decision.claims is None


def test_a_token_for_the_wrong_reply_domain_is_ignored(session):
    """Only addresses at BILLBOX_REPLY_DOMAIN carry tokens."""
    world = make_world(session)
    open_ticket(session, world, link_receipt=True)
    address = reply_address(world.token, "elsewhere.example")
    decision = decide(session, mail(to=address), envelope_to=[address])
    assert decision.rule == ThreadRule.NEW_TICKET


def test_a_forwarded_receipt_does_not_thread_by_the_token_in_its_body(session):
    """The quoted Reply-To of a forward is not a recipient: no token rule, a new ticket."""
    world = make_world(session)
    open_ticket(session, world, link_receipt=True)
    body = (
        "Please see below.\r\n\r\n---------- Forwarded message ---------\r\n"
        f"From: Shop <{SUPPORT}>\r\nReply-To: {world.reply_to}\r\n"
        "Subject: Your receipt R-2026-000001\r\n\r\nThank you for your payment."
    )
    parsed = mail(subject="Fwd: Your receipt R-2026-000001", body=body)
    decision = decide(session, parsed, envelope_to=[SUPPORT])
    assert decision.rule == ThreadRule.NEW_TICKET
    assert decision.ticket_id is None
    assert decision.claims is None


def test_a_forwarded_receipt_with_our_tag_threads_by_the_tag(session):
    """A forward from the customer keeps our subject tag: the tag threads it, not the token."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    body = f"FYI\r\n\r\n> Reply-To: {world.reply_to}\r\n> Thank you for your payment."
    parsed = mail(subject=f"Fwd: Your receipt {subject_tag(ticket.id)}", body=body)
    decision = decide(session, parsed, envelope_to=[SUPPORT])
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)
    assert decision.claims is None


def test_a_token_without_a_ticket_lets_in_reply_to_thread_within_the_same_customer(session):
    """The token names the customer; In-Reply-To finds their ticket: in_reply_to, with claims."""
    world = make_world(session)
    ticket = open_ticket(session, world)  # receipt not linked to it
    add_ticket_message(session, ticket, "<agent-answer-1@shop.example>")
    parsed = mail(to=world.reply_to, headers="In-Reply-To: <agent-answer-1@shop.example>\r\n")
    decision = decide(session, parsed, envelope_to=[world.reply_to])
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.IN_REPLY_TO)
    assert decision.claims is not None


def test_a_token_keeps_headers_from_threading_into_another_customers_ticket(session):
    """In-Reply-To pointing at someone else's ticket loses to the token's customer."""
    world = make_world(session)
    other = make_world(session, number="R-2026-000002", customer_email="bob@example.net")
    foreign = open_ticket(session, other, requester="bob@example.net")
    add_ticket_message(session, foreign, "<bob-1@example.net>")
    parsed = mail(to=world.reply_to, headers="In-Reply-To: <bob-1@example.net>\r\n")
    decision = decide(session, parsed, envelope_to=[world.reply_to])
    assert decision.ticket_id is None
    assert decision.rule == ThreadRule.REPLY_TOKEN
    assert (ThreadRule.IN_REPLY_TO, foreign.id) in decision.candidates


# --- In-Reply-To and References ---------------------------------------------


def test_an_outlook_reply_without_references_threads_by_in_reply_to(session):
    """Outlook keeps In-Reply-To and Thread-Index but drops References: In-Reply-To suffices."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    parsed = mail(
        subject="AW: Your receipt R-2026-000001",
        headers=(
            f"In-Reply-To: {world.receipt.message_id}\r\n"
            "Thread-Index: AQHZ1234567890abcdefghijklmnopqrstuv==\r\n"
            "Thread-Topic: Your receipt R-2026-000001\r\n"
        ),
    )
    assert parsed.references == []
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.IN_REPLY_TO)
    assert decision.claims is None


def test_a_customer_changed_subject_still_threads_by_in_reply_to(session):
    """The subject is rewritten entirely; the header to an earlier ticket message threads it."""
    world = make_world(session)
    ticket = open_ticket(session, world)
    add_ticket_message(session, ticket, "<ana-first@example.org>")
    parsed = mail(
        subject="Different question entirely", headers="In-Reply-To: <ana-first@example.org>\r\n"
    )
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.IN_REPLY_TO)


def test_references_are_tried_newest_first(session):
    """When In-Reply-To is unknown, the newest known References id decides."""
    world = make_world(session)
    older = open_ticket(session, world)
    newer = open_ticket(session, world)
    add_ticket_message(session, older, "<old@example.org>")
    add_ticket_message(session, newer, "<new@example.org>")
    parsed = mail(
        headers=(
            "In-Reply-To: <unknown@elsewhere.example>\r\n"
            "References: <old@example.org> <unknown@elsewhere.example> <new@example.org>\r\n"
        )
    )
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (newer.id, ThreadRule.REFERENCES)
    assert decision.candidates == (
        (ThreadRule.REFERENCES, newer.id),
        (ThreadRule.REFERENCES, older.id),
    )


def test_references_to_our_outbound_email_thread_the_reply(session):
    """A References id that is one of our sent emails finds that email's ticket."""
    world = make_world(session)
    ticket = open_ticket(session, world, link_receipt=True)
    parsed = mail(headers=f"References: <x@elsewhere.example> {world.receipt.message_id}\r\n")
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.REFERENCES)


def test_a_header_pointing_at_a_closed_ticket_falls_through_to_a_new_ticket(session):
    """In-Reply-To to a closed ticket is a candidate, not a decision."""
    world = make_world(session)
    closed = open_ticket(session, world, status=TicketStatus.CLOSED)
    add_ticket_message(session, closed, "<ana-old@example.org>")
    decision = decide(session, mail(headers="In-Reply-To: <ana-old@example.org>\r\n"))
    assert (decision.ticket_id, decision.rule) == (None, ThreadRule.NEW_TICKET)
    assert decision.candidates == ((ThreadRule.IN_REPLY_TO, closed.id),)


def test_every_candidate_is_recorded_even_when_the_token_wins(session):
    """Token, In-Reply-To and tag each found a ticket: the token decides, all are listed."""
    world = make_world(session)
    by_token = open_ticket(session, world, link_receipt=True)
    by_header = open_ticket(session, world)
    by_tag = open_ticket(session, world)
    add_ticket_message(session, by_header, "<ana-2@example.org>")
    parsed = mail(
        to=world.reply_to,
        subject=f"Re: something {subject_tag(by_tag.id)}",
        headers="In-Reply-To: <ana-2@example.org>\r\n",
    )
    decision = decide(session, parsed, envelope_to=[world.reply_to])
    assert (decision.ticket_id, decision.rule) == (by_token.id, ThreadRule.REPLY_TOKEN)
    assert decision.candidates == (
        (ThreadRule.REPLY_TOKEN, by_token.id),
        (ThreadRule.IN_REPLY_TO, by_header.id),
        (ThreadRule.SUBJECT_TAG, by_tag.id),
    )


# --- subject tag --------------------------------------------------------------


def test_our_subject_tag_from_the_requester_threads_the_message(session):
    """No token, no known headers: ``[#N]`` from the ticket's requester threads it."""
    world = make_world(session)
    ticket = open_ticket(session, world)
    decision = decide(session, mail(subject=f"Re: Question {subject_tag(ticket.id)}"))
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)


def test_a_stacked_multilingual_prefix_subject_still_shows_the_tag(session):
    """``AW: RE[2]: Fwd: Your receipt [#7]`` threads into ticket 7."""
    world = make_world(session)
    ticket = open_ticket(session, world, ticket_id=7)
    decision = decide(session, mail(subject="AW: RE[2]: Fwd: Your receipt [#7]"))
    assert ticket.id == 7
    assert (decision.ticket_id, decision.rule) == (7, ThreadRule.SUBJECT_TAG)


def test_an_rfc2047_encoded_subject_is_decoded_before_looking_for_the_tag(session):
    """The tag inside an encoded word (quoted-printable UTF-8) is found."""
    world = make_world(session)
    ticket = open_ticket(session, world)
    encoded = f"=?utf-8?q?SV=3A_Kvitto_f=C3=B6r_betalning_=5B=23{ticket.id}=5D?="
    parsed = mail(subject=encoded)
    assert f"[#{ticket.id}]" in parsed.subject
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)


def test_a_tag_from_another_known_address_of_the_customer_threads(session):
    """An address recorded as the customer's email identity may use the tag."""
    world = make_world(session)
    ticket = open_ticket(session, world)
    session.add(
        CustomerIdentity(
            customer_id=world.customer.id,
            kind=IdentityKind.EMAIL,
            namespace="email",
            value="accounts@ana-company.example",
        )
    )
    session.commit()
    parsed = mail(sender="Accounts@Ana-Company.example", subject=f"Re: {subject_tag(ticket.id)}")
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)


def test_a_tag_from_the_customers_primary_address_threads(session):
    """The ticket was opened from another address; the customer's own address may tag it."""
    world = make_world(session)
    ticket = open_ticket(session, world, requester="ana.lopez@work.example")
    decision = decide(session, mail(sender=CUSTOMER, subject=f"Re: {subject_tag(ticket.id)}"))
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)


def test_a_tag_from_the_requester_of_a_ticket_without_a_customer_threads(session):
    """A ticket opened by an unmatched sender takes tagged replies from that sender."""
    make_world(session)
    ticket = Ticket(status=TicketStatus.OPEN, requester_email="walk-in@example.com")
    session.add(ticket)
    session.commit()
    parsed = mail(sender="Walk-In@Example.com", subject=f"Re: {subject_tag(ticket.id)}")
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)


def test_a_tag_with_a_token_of_the_tickets_customer_threads_from_a_new_address(session):
    """A valid token names the customer, so their tag threads even from an unknown address."""
    world = make_world(session)
    ticket = open_ticket(session, world)  # the receipt is not linked to it
    parsed = mail(
        sender="ana.lopez@work.example",
        to=world.reply_to,
        subject=f"Re: {subject_tag(ticket.id)}",
    )
    decision = decide(session, parsed, envelope_to=[world.reply_to])
    assert (decision.ticket_id, decision.rule) == (ticket.id, ThreadRule.SUBJECT_TAG)
    assert decision.claims is not None


def test_our_tag_from_a_stranger_opens_a_new_ticket(session):
    """Anyone can type ``[#N]``: from an unknown sender it does not hijack ticket N."""
    world = make_world(session)
    ticket = open_ticket(session, world)
    parsed = mail(sender="mallory@evil.example", subject=f"Re: refund {subject_tag(ticket.id)}")
    decision = decide(session, parsed)
    assert (decision.ticket_id, decision.rule) == (None, ThreadRule.NEW_TICKET)
    assert decision.candidates == ((ThreadRule.SUBJECT_TAG, ticket.id),)


def test_another_helpdesks_ticket_tag_is_not_ours(session):
    """``[Ticket #N]`` written by some other helpdesk does not thread into our ticket N."""
    world = make_world(session)
    ticket = open_ticket(session, world)
    decision = decide(session, mail(subject=f"Re: [Ticket #{ticket.id}] Your receipt"))
    assert (decision.ticket_id, decision.rule) == (None, ThreadRule.NEW_TICKET)
    assert decision.candidates == ()


def test_a_tag_for_a_ticket_that_does_not_exist_opens_a_new_ticket(session):
    """``[#999]`` with no ticket 999: new ticket, no candidate."""
    make_world(session)
    decision = decide(session, mail(subject="Re: hello [#999]"))
    assert (decision.ticket_id, decision.rule, decision.candidates) == (
        None,
        ThreadRule.NEW_TICKET,
        (),
    )


def test_a_message_with_nothing_to_go_on_opens_a_new_ticket(session):
    """No token, unknown headers, no tag: new_ticket."""
    make_world(session)
    parsed = mail(subject="Hello", headers="In-Reply-To: <nothing@nowhere.example>\r\n")
    assert decide(session, parsed) == ThreadDecision(None, ThreadRule.NEW_TICKET, (), None)


def test_hostile_threading_headers_are_harmless(session):
    """Huge tag numbers, thousands of References and junk ids: a new ticket, no exception."""
    make_world(session)
    references = " ".join(f"<r{i}@x.example>" for i in range(3000))
    parsed = mail(
        subject="Re: [#2147483648] [#99999999999999999] [#99999999999999999999] [#-1] [#]",
        headers=f"In-Reply-To: <{'x' * 400}@x>\r\nReferences: {references}\r\n",
    )
    assert len(parsed.references) == 3000
    assert decide(session, parsed) == ThreadDecision(None, ThreadRule.NEW_TICKET, (), None)


def test_a_valid_token_with_ids_beyond_any_row_asks_for_a_new_ticket(session):
    """Our own token with ids past the 32-bit columns: no lookup error, just its claims."""
    big = make_reply_token(SECRET, document_id=2**40, customer_id=2**33)
    address = reply_address(big, DOMAIN)
    decision = decide(session, mail(to=address), envelope_to=[address])
    assert (decision.ticket_id, decision.rule) == (None, ThreadRule.REPLY_TOKEN)
    assert decision.claims == TokenClaims(customer_id=2**33, document_id=2**40)
    assert link_document_emails(session, decision.claims, 1) == 0


# --- subjects -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Your receipt", "Your receipt"),
        ("RE[2]: Your receipt", "Your receipt"),
        ("AW: RE[2]: Fwd: Your receipt [#7]", "Your receipt [#7]"),
        ("Aw: WG: Ihre Quittung", "Ihre Quittung"),
        ("SV: Sv: Kvitto", "Kvitto"),
        ("Antw: Ontvangstbewijs", "Ontvangstbewijs"),
        ("Fw: FWD: receipt", "receipt"),
        ("TR: Re : reçu", "reçu"),
        ("R: Rif: ricevuta", "ricevuta"),
        ("Enc: RES: recibo", "recibo"),
        ("Re^3: hello", "hello"),
        ("\u56de\u590d\uff1a\u6536\u636e", "\u6536\u636e"),  # Chinese "Re" + full-width colon
        ("=?utf-8?b?QVc6IFF1aXR0dW5nIGbDvHIgSWhyZSBaYWhsdW5n?=", "Quittung für Ihre Zahlung"),
        ("Re:   folded\r\n  subject", "folded subject"),
        ("Receipt for Reynolds", "Receipt for Reynolds"),
        ("Research: results", "Research: results"),
        ("[Ticket #5] Re: question", "[Ticket #5] Re: question"),
        ("", ""),
    ],
)
def test_normalise_subject_strips_reply_and_forward_prefixes(subject, expected):
    """Prefixes in many languages go, stacked or not; words that merely start alike stay."""
    assert normalise_subject(subject) == expected


def test_a_broken_encoded_word_is_kept_as_text_rather_than_raising():
    """An unknown charset in an encoded word does not raise."""
    assert normalise_subject("Re: =?x-unknown?q?abc?=") != ""


def test_subject_tag_is_our_bracketed_hash_format():
    """The tag we put in subjects is ``[#<id>]``."""
    assert subject_tag(123) == "[#123]"
