"""The interface every external helpdesk client implements (Zendesk, Freshdesk, …).

Billbox always files a message in its own inbox first (``inbox.py``), so
threading, matching and the audit trail do not depend on a vendor being up.
A job then pushes the ticket message to the configured helpdesk through one
of these clients, storing the external ids it gets back on our ticket and
ticket message. The client calls are therefore small and vendor-shaped:
create a ticket, append a customer reply, add a private note, find what an
earlier attempt may already have created.

Errors (all :class:`~billbox.errors.BillboxError`)::

    HelpdeskError                 the vendor refused or answered nonsense (message shown to admins)
    ├── HelpdeskAuthError         bad credentials: fix the settings, retrying cannot help
    └── HelpdeskUnavailable       network trouble, 5xx, 429 (retry_after from Retry-After)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from billbox.errors import BillboxError


class HelpdeskError(BillboxError):
    """The helpdesk refused a call; ``status`` and the vendor's own message are kept."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HelpdeskAuthError(HelpdeskError):
    """Credentials were refused (401/403); an admin must fix the helpdesk settings."""


class HelpdeskUnavailable(HelpdeskError):
    """Temporary: connection failure, 5xx or 429; ``retry_after`` in seconds if the vendor said."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Requester:
    email: str
    name: str = ""


@dataclass(frozen=True)
class MessageBody:
    """One customer message: plain text always, sanitised HTML when the mail had it."""

    text: str
    html: str | None = None
    #: Our Message-ID for it (``<…@…>``); clients store it where the vendor lets them
    #: (external id, custom field, header) so :meth:`find_ticket` can see a retry's twin.
    message_id: str | None = None


@dataclass(frozen=True)
class BillingNote:
    """The billing context as an internal note, in both forms."""

    text: str
    html: str


@dataclass(frozen=True)
class ExternalTicket:
    """What the vendor calls it: ticket/conversation id, and the id of the message we added."""

    ticket_id: str
    message_id: str | None = None
    url: str | None = None


class ExternalHelpdesk(Protocol):
    """A configured helpdesk account (credentials are given to the constructor)."""

    @property
    def name(self) -> str:
        """``zendesk``, ``freshdesk``, ``helpscout``, ``intercom`` or ``front``."""
        ...

    def test_connection(self) -> str:
        """Make one cheap authenticated call; return a line for the admin ("Connected as …")."""
        ...

    def find_ticket(self, message_id: str) -> ExternalTicket | None:
        """The ticket an earlier (maybe timed-out) create for this Message-ID made, if any."""
        ...

    def create_ticket(
        self, requester: Requester, subject: str, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        """A new ticket from the customer with ``body`` as its first message, plus the note."""
        ...

    def append_reply(
        self, ticket_id: str, requester: Requester, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        """Add a customer reply to an existing ticket (and a fresh billing note)."""
        ...

    def has_message(self, ticket_id: str, message_id: str) -> bool:
        """Whether a reply with our Message-ID is already on the ticket (retry after a timeout)."""
        ...

    def add_note(self, ticket_id: str, note: BillingNote, key: str) -> None:
        """A private billing note on a ticket opened in the helpdesk itself; ``key`` (a
        Message-ID-shaped id) makes a retry find the note it already added."""
        ...


class SidebarVerifier(Protocol):
    """Checks that a sidebar/panel request really comes from the vendor's app for our account."""

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
        """The customer email the panel is for; raise :class:`HelpdeskAuthError` if unsigned."""
        ...
