"""Money, counts and durations as people read them: the one formatting policy (lib/money.py)."""

from decimal import Decimal

import pytest

from lib.money import count, cost_in_unit, duration, exact_usd, in_unit, money, money_in_unit, multiplier, usd, usd_cost


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("0"), "$0.00"),
        (Decimal("0.0023"), "<$0.01"),
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
        (Decimal("1234.5"), "$1,234.50"),
        (None, ""),
        ("NaN", ""),
    ],
)
def test_exact_usd_filter(value, shown):
    assert exact_usd(value) == shown


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


@pytest.mark.parametrize(
    ("amount", "unit", "shown"),
    [
        (Decimal("1250"), "credits", "1,250.00 credits"),
        (Decimal("-3"), "€", "-€3.00"),
        (Decimal("5"), "US$", "US$5.00"),
        (Decimal("5"), "$", "$5.00"),
    ],
)
def test_the_portal_shows_money_in_the_resellers_unit(amount, unit, shown):
    assert in_unit(amount, unit) == shown


def test_the_portal_unit_keeps_the_exact_hover_and_the_cost_precision():
    assert money_in_unit(Decimal("12.3456"), "credits") == '<span class="money" title="12.3456 credits">12.35 credits</span>'
    assert cost_in_unit(Decimal("0.0023"), "credits") == "0.002300 credits"


# Bug: seven requests costing $0.003 showed as "Real cost $0.00" and "Budget used: $0.00".
@pytest.mark.parametrize(
    ("amount", "shown"),
    [(Decimal("0.003"), "<$0.01"), (Decimal("0.000001"), "<$0.01"), (Decimal("-0.002"), "-<$0.01"), (Decimal("0.005"), "$0.01")],
)
def test_a_non_zero_amount_under_a_cent_never_reads_as_zero(amount, shown):
    assert usd(amount) == shown


def test_an_amount_under_a_cent_keeps_its_exact_value_on_hover():
    assert money(Decimal("0.00195")) == '<span class="money" title="$0.00195">&lt;$0.01</span>'
    assert money_in_unit(Decimal("0.003"), "credits") == '<span class="money" title="0.003 credits">&lt;0.01 credits</span>'
    assert in_unit(Decimal("0.003"), "€") == "<€0.01"


def test_zero_is_still_zero():
    assert usd(Decimal("0.000000")) == "$0.00"
    assert money(Decimal("0")) == "$0.00"


def test_a_threshold_reads_in_its_own_unit_never_with_padding_zeros():
    from automation.models import AlertRule

    Kind = AlertRule.Kind
    assert AlertRule(kind=Kind.KEY_REMAINING_UNDER, threshold=Decimal("50.0000")).threshold_text == "$50.00"
    assert AlertRule(kind=Kind.KEY_REMAINING_PERCENT_UNDER, threshold=Decimal("20.0000")).threshold_text == "20%"
    assert AlertRule(kind=Kind.ACCOUNT_RUNS_OUT_WITHIN, threshold=Decimal("7.0000")).threshold_text == "7 days"
    assert AlertRule(kind=Kind.KEY_SPENT_OUT, threshold=None).threshold_text == ""


def test_a_money_field_shows_a_stored_amount_as_typed_not_padded():
    from lib.forms import PlainDecimalField

    assert PlainDecimalField().prepare_value(Decimal("50.0000")) == "50"
    assert PlainDecimalField().prepare_value(Decimal("12.5000")) == "12.5"
    assert PlainDecimalField().prepare_value("7.10") == "7.10"
