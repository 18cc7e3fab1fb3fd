"""Money as integer minor units plus an ISO 4217 code; never floats.

The exponent table covers the currencies whose minor unit is not 2 (ISO
4217 list, 2024 edition); everything else uses 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billbox.errors import CurrencyMismatch

_EXPONENTS = {
    # zero-decimal
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four-decimal
    "CLF": 4, "UYW": 4,
}  # fmt: skip


def exponent(currency: str) -> int:
    """Digits after the decimal point in ``currency``'s minor unit."""
    return _EXPONENTS.get(currency.upper(), 2)


def check_currency(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"not an ISO 4217 currency code: {code!r}")
    return code


@dataclass(frozen=True, order=True)
class Money:
    """An exact amount: ``amount`` minor units of ``currency``."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError(f"amount must be an int of minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", check_currency(self.currency))

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} and {other.currency}")

    def to_decimal(self) -> Decimal:
        """The major-unit value as an exact Decimal (for display and CSV)."""
        return Decimal(self.amount).scaleb(-exponent(self.currency))

    def __str__(self) -> str:
        return f"{self.to_decimal():.{exponent(self.currency)}f} {self.currency}"

    @classmethod
    def from_decimal(cls, value: Decimal | str, currency: str) -> Money:
        """Parse a major-unit string; refuses more precision than the currency has."""
        value = Decimal(value)
        minor = value.scaleb(exponent(currency))
        if minor != minor.to_integral_value():
            raise ValueError(f"{value} has more decimals than {currency} allows")
        return cls(int(minor), currency)
