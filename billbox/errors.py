"""One hierarchy for every error Billbox raises on purpose.

Callers catch the narrowest class they can handle; the CLI maps
``SettingsError`` to exit code 2 and workers use ``PermanentError`` to
stop retrying a job that can never succeed::

    BillboxError
    ├── SettingsError          a setting is missing or malformed (names the variable)
    ├── DatabaseError
    │   └── MigrationError     the schema is not at the revision the code needs
    ├── JobError
    │   ├── PermanentError     retrying cannot help; the job row becomes ``failed``
    │   └── UnknownJobKind     no handler is registered for a job row's kind
    ├── GatewayError           (billbox.gateways) a gateway call or payload failed
    │   ├── GatewayUnavailable     network trouble or rate limit: retry later
    │   ├── GatewayParseError      a payload we cannot understand
    │   └── WebhookVerificationError  bad or stale signature: answer 400, store nothing
    ├── LedgerError            a gateway object cannot be applied to the ledger
    │   └── CurrencyMismatch   money of two currencies met in one sum
    └── NumberingError         a document series cannot hand out a number
"""

from __future__ import annotations


class BillboxError(Exception):
    """Base class of every error Billbox raises deliberately."""


class SettingsError(BillboxError):
    """A setting is missing or malformed.

    ``variable`` is the environment variable the operator must fix; the
    message is printed as one line and the program exits with code 2.
    """

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class DatabaseError(BillboxError):
    """The database cannot be reached or used."""


class MigrationError(DatabaseError):
    """The database schema is not at the revision this code expects."""


class JobError(BillboxError):
    """A unit of background work failed."""


class PermanentError(JobError):
    """Retrying will not help; the job is marked failed at once."""


class UnknownJobKind(PermanentError):
    """A job row names a kind no handler is registered for."""


class LedgerError(BillboxError):
    """A gateway object cannot be applied to the ledger."""


class CurrencyMismatch(LedgerError):
    """Amounts in different currencies were combined."""


class NumberingError(BillboxError):
    """A document number series cannot hand out a number."""
