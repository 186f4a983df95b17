"""Money as people read it: the usd, exact_usd and multiplier formats (lib/money.py)."""

from decimal import Decimal

import pytest

from lib.money import exact_usd, multiplier, usd


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0"), "$0.00"),
        (Decimal("0.0023"), "$0.0023"),
        ("12.3400", "$12.34"),
        (Decimal("-3"), "-$3.00"),
        (None, ""),
    ],
)
def test_usd_filter(amount, shown):
    assert usd(amount) == shown


# Bug: multipliers read "×1.5000" (floatformat:"-4"); costs lost digits past the fourth.
@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("1.5000"), "1.5"), (Decimal("4"), "4"), ("2.50", "2.5"), (Decimal("10"), "10"), (None, ""), ("x", "")],
)
def test_multiplier_filter(value, shown):
    assert multiplier(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.202901"), "$0.202901"),
        (Decimal("0.0023"), "$0.0023"),
        (0.0023, "$0.0023"),
        ("2.3E-7", "$0.00000023"),
        (Decimal("1234.5"), "$1,234.5000"),
        (None, ""),
        ("NaN", ""),
    ],
)
def test_exact_usd_filter(value, shown):
    assert exact_usd(value) == shown
