"""Prices the way resellers price: what the customer sees, what the balance pays, the margin between.

derouter's guide prices a key as "customer sees $100, you pay $60": the markup (display
multiplier) is the customer's amount over the cost, and the margin is (customer price - cost)
/ customer price. Any two of the three figures give the third; everything is Decimal, the
cost to the ledger's 4 decimals and the multiplier to derouter's 4.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext_lazy as _

PLACES = Decimal("0.0001")
HUNDRED = Decimal(100)


class PriceError(ValueError):
    """The figures given do not make a price (a cost above the customer's amount, or figures that disagree)."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Price:
    """``cost`` is what the reseller's balance pays (real dollars); the customer sees ``cost * multiplier``."""

    cost: Decimal
    multiplier: Decimal

    @property
    def customer(self):
        return self.cost * self.multiplier

    @property
    def margin(self):
        return self.customer - self.cost

    @property
    def margin_percent(self):
        """(customer price - cost) / customer price, in percent to one decimal (0 for a zero price)."""
        if not self.customer:
            return Decimal(0)
        return (self.margin / self.customer * HUNDRED).quantize(Decimal("0.1"), ROUND_HALF_UP)


def price_from(*, cost=None, customer=None, multiplier=None):
    """The Price two of the three figures make (one alone: at no markup); raises PriceError when they cannot.

    With all three, they must agree to the cent.
    """
    if cost is None and customer is None:
        raise PriceError(_("Enter what the customer gets, what you pay, or both."), field="budget")
    if cost is not None and customer is not None:
        if customer < cost:
            raise PriceError(_("What the customer gets cannot be less than what you pay: the markup is at least ×1."),
                             field="customer_budget")
        found = (customer / cost).quantize(PLACES, ROUND_HALF_UP)
        if multiplier is not None and abs(cost * multiplier - customer) >= Decimal("0.01"):
            raise PriceError(_("The customer's amount, your cost and the markup do not agree: give two of them and "
                               "leave the third empty."), field="display_multiplier")
        return Price(cost, multiplier if multiplier is not None else found)
    multiplier = Decimal(1) if multiplier is None else multiplier
    if cost is None:
        cost = (customer / multiplier).quantize(PLACES, ROUND_HALF_UP)
    return Price(cost, multiplier)


def customer_amount(real, multiplier):
    """A real amount as the customer sees it at this multiplier."""
    return Decimal(real) * Decimal(multiplier)
