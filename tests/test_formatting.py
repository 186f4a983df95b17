"""One formatting policy for money, counts and durations (lib/money.py)."""

from decimal import Decimal

import pytest

from lib.money import count, duration, exact_usd, money, usd, usd_cost


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("1865.3215"), "$1,865.32"),
        (Decimal("1135"), "$1,135.00"),
        (Decimal("236.647"), "$236.65"),
        (Decimal("0.005"), "$0.01"),
        (Decimal("-3"), "-$3.00"),
    ],
)
def test_amounts_always_show_two_decimals_so_a_column_lines_up(amount, shown):
    assert usd(amount) == shown


def test_a_rounded_amount_keeps_its_exact_value_as_a_hover_title():
    assert money(Decimal("1865.3215")) == '<span class="money" title="$1,865.3215">$1,865.32</span>'


def test_an_amount_that_rounding_does_not_change_is_plain_text():
    assert money(Decimal("1135.00")) == "$1,135.00"


@pytest.mark.parametrize(
    ("cost", "shown"),
    [
        (Decimal("0.202901"), "$0.202901"),
        (Decimal("1.5"), "$1.500000"),
        (Decimal("0.000012"), "$0.000012"),
        (Decimal("0.0000004"), "$0.000000"),
    ],
)
def test_per_request_costs_always_show_six_decimals(cost, shown):
    assert usd_cost(cost) == shown


@pytest.mark.parametrize(("value", "shown"), [(12345, "12,345"), (3, "3"), ("1000000", "1,000,000"), (None, "")])
def test_counts_have_thousands_separators(value, shown):
    assert count(value) == shown


@pytest.mark.parametrize(
    ("milliseconds", "shown"),
    [
        (900, "900 ms"),
        (0, "0 ms"),
        (2100, "2.1 s"),
        (12000, "12 s"),
        (59_960, "1 min"),
        (370_540, "6 min 10 s"),
        (7_500_000, "2 h 5 min"),
        (None, ""),
    ],
)
def test_durations_read_as_people_say_them(milliseconds, shown):
    assert duration(milliseconds) == shown


def test_exact_amounts_keep_every_decimal_but_need_no_padding_past_two():
    assert exact_usd(Decimal("0.202901")) == "$0.202901"
    assert exact_usd(Decimal("1234.5000")) == "$1,234.50"
