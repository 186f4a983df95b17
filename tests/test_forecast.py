"""Run-out forecasts: per key from its last 7 days, for the account from the available balance."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.utils import timezone

from analytics import forecast
from analytics.templatetags.analytics import days_left
from derouter import client as derouter_client
from mirror import key_store
from mirror.models import KeySnapshot
from tests.mirror_helpers import mirrored_key, usage

pytestmark = pytest.mark.django_db


def _today():
    return timezone.now().date()


@pytest.fixture
def keys():
    """Fast burns $1/day with $4 left; slow burns $0.10/day with $30 left; idle spent nothing lately."""
    today = _today()
    fast = mirrored_key("Fast", budget="10", remaining="4")
    slow = mirrored_key("Slow", budget="40", remaining="30")
    idle = mirrored_key("Idle", budget="5", remaining="5")
    usage(fast, today, "1", count=7)
    usage(slow, today - timedelta(days=6), "0.7")
    usage(slow, today - timedelta(days=7), "50")  # outside the seven days
    usage(idle, today - timedelta(days=20), "1")
    return {"fast": fast, "slow": slow, "idle": idle}


def test_a_keys_burn_rate_is_its_last_seven_days_and_its_days_left_follow(keys):
    fast = forecast.get_key_forecast(keys["fast"])
    assert fast.burn_per_day == Decimal(1)
    assert fast.days_left == Decimal(4)
    assert fast.runs_out_on == _today() + timedelta(days=4)
    assert forecast.get_key_forecast(keys["slow"]).days_left == Decimal(300)
    assert forecast.get_key_forecast(keys["idle"]).days_left is None


@pytest.mark.parametrize(
    ("days", "text"),
    [(None, "not at this rate"), (Decimal(0), "already spent"), (Decimal("0.4"), "less than a day"),
     (Decimal("1.9"), "about 1 day"), (Decimal("4.2"), "about 4 days"), (Decimal(400), "over a year")],
)
def test_days_left_read_as_words(days, text):
    assert days_left(days) == text


def test_the_key_list_can_sort_snapshots_by_days_left_with_the_idle_last(keys):
    empty = mirrored_key("Empty", budget="5", remaining="0")
    annotated = forecast.annotate_days_left(KeySnapshot.objects.all()).order_by(F("days_left").asc(nulls_last=True))
    assert [key.label for key in annotated] == ["Empty", "Fast", "Slow", "Idle"]
    by_label = {key.label: key for key in annotated}
    assert by_label["Fast"].days_left == Decimal(4) and by_label["Fast"].burn_7d == Decimal(7)
    assert by_label["Idle"].days_left is None and empty.remaining == 0


def test_only_active_keys_running_out_within_seven_days_are_listed(keys):
    doomed = mirrored_key("Deleted", budget="1", remaining="0.5")
    usage(doomed, _today(), "1")
    key_store.mark_deleted(doomed.sub_key_id)
    assert [key.label for key in forecast.get_keys_running_out()] == ["Fast"]


def test_the_account_runs_out_when_spent_keys_draw_on_the_available_balance():
    # Own use $1/day; a key with $2 left at $1/day joins after day 2: 10 = 2 x 1 + (t - 2) x 2, so t = 6.
    assert forecast.get_account_days_left(Decimal(10), [(Decimal(2), Decimal(1))], Decimal(1)) == Decimal(6)
    # Before any key runs out the own use alone empties it.
    assert forecast.get_account_days_left(Decimal(1), [(Decimal(50), Decimal(1))], Decimal(1)) == Decimal(1)
    # Keys with plenty left and no own use: the available balance lasts until they need topping up, and then some.
    assert forecast.get_account_days_left(Decimal(3), [(Decimal(3), Decimal(1)), (Decimal(0), Decimal(2))], Decimal(0)) == Decimal("1.5")
    assert forecast.get_account_days_left(Decimal(10), [(Decimal(5), Decimal(0))], Decimal(0)) is None
    assert forecast.get_account_days_left(Decimal(0), [], Decimal(1)) == Decimal(0)


def test_the_overview_shows_keys_running_out_and_the_accounts_runway(owner_client, keys):
    # The runway is worked out from the balance as last read (here by the overview's live balance).
    owner_client.get("/dashboard/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="account-balance")
    html = owner_client.get("/dashboard/").content.decode()
    assert 'id="business-summary"' in html
    assert "Keys running out within 7 days" in html
    section = html[html.index('id="running-out-title"'):]
    assert "Fast" in section and "about 4 days" in section
    assert "Slow" not in section[: section.index("</section>")]
    assert "the available balance of" in html
    assert 'id="spend-sparkline-data"' in html


def test_the_key_page_shows_its_usage_forecast_and_statements(owner_client, simulator, make_key):
    created = make_key(budget="10", label="Forecast me")
    sub_key = next(item for item in derouter_client.list_sub_keys() if item.id == created.id)
    snapshot = key_store.upsert_key(sub_key)
    usage(snapshot, _today(), "0.5", count=7)
    html = owner_client.get(f"/dashboard/keys/{created.id}/").content.decode()
    assert 'id="key-analytics"' in html
    assert "about 20 days" in html
    assert 'id="key-daily-chart-data"' in html
    assert f"/dashboard/keys/{created.id}/statements/{_today():%Y-%m}/" in html


def test_a_key_without_recent_usage_does_not_run_out_at_this_rate(owner_client, make_key):
    created = make_key(budget="1", label="Quiet")
    html = owner_client.get(f"/dashboard/keys/{created.id}/").content.decode()
    assert 'id="key-analytics"' in html and "not at this rate" in html


def test_a_key_with_nothing_left_runs_out_first_even_without_recent_use(keys):
    mirrored_key("Empty", budget="5", remaining="0")
    running_out = forecast.get_keys_running_out()
    assert [key.label for key in running_out] == ["Empty", "Fast"]
    assert running_out[0].days_left == 0 and running_out[1].burn_7d == Decimal(7)


def test_a_page_of_keys_gets_the_same_days_left_as_the_sql_sort(keys):
    mirrored_key("Empty", budget="5", remaining="0")
    snapshots = list(KeySnapshot.objects.all())
    annotated = dict(forecast.annotate_days_left(KeySnapshot.objects.all()).values_list("pk", "days_left"))
    assert forecast.get_days_left_of(snapshots) == annotated
    assert sorted(value for value in annotated.values() if value is not None) == [0, 4, 300]
