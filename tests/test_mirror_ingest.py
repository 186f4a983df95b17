"""Usage rows and their rollups are written together, once."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from derouter.client import Secret, SubKey, UsageLog
from mirror import ingest, key_store
from mirror.models import DailyRollup, KeySnapshot, UsageRecord
from tests.mirror_helpers import store_logs

pytestmark = pytest.mark.django_db


def _sub_key(**fields):
    values = {
        "id": "key-1", "label": "Acme", "key_id": "sk-ant-abc...", "secret": Secret("sk-ant-abcdefsecret"),
        "budget": Decimal("50"), "spent": Decimal("12.5"), "remaining": Decimal("37.5"), "rpm_limit": 60,
        "concurrent_limit": 5, "display_multiplier": Decimal("4"), "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return SubKey(**{**values, **fields})


def _log(request_id, cost, when=datetime(2026, 11, 2, 10, tzinfo=UTC), model="claude-sonnet-4-6"):
    return UsageLog(
        request_id=request_id, model=model, input_tokens=100, output_tokens=50, cache_read_tokens=0,
        cache_write_tokens=0, cost=Decimal(cost), duration_ms=900, created_at=when,
    )


def test_a_snapshot_keeps_no_secret_only_its_digest():
    snapshot = key_store.upsert_key(_sub_key())
    assert snapshot.secret_sha256 == key_store.secret_digest("sk-ant-abcdefsecret")
    assert "abcdefsecret" not in str(KeySnapshot.objects.values().get())


def test_rows_and_rollups_are_written_once_with_billed_amounts():
    key = key_store.upsert_key(_sub_key())
    logs = [_log("req-1", "0.0023"), _log("req-2", "0.001")]
    assert store_logs(key, logs, Decimal("4")) == 2
    assert store_logs(key, logs, Decimal("4")) == 0
    rollup = DailyRollup.objects.get(key=key)
    assert (rollup.requests, rollup.cost, rollup.billed) == (2, Decimal("0.0033"), Decimal("0.0132"))
    assert UsageRecord.objects.get(request_id="req-1").billed == Decimal("0.0092")


def test_a_batch_of_held_new_and_repeated_rows_adds_each_new_row_once_to_its_utc_day():
    key = key_store.upsert_key(_sub_key())
    store_logs(key, [_log("req-1", "0.01")], Decimal("4"))
    late_evening_in_new_york = datetime.fromisoformat("2026-11-02T21:30:00.250000-05:00")
    new = _log("req-2", "0.02", when=late_evening_in_new_york)
    assert store_logs(key, [_log("req-1", "0.01"), new, new], Decimal("4")) == 1
    assert UsageRecord.objects.get(request_id="req-2").created_at == datetime(2026, 11, 3, 2, 30, 0, 250000, tzinfo=UTC)
    assert UsageRecord.objects.filter(created_at__date="2026-11-03").count() == 1
    rollups = DailyRollup.objects.filter(key=key).order_by("day").values_list("day", "requests", "cost", "billed")
    assert [(day.isoformat(), *sums) for day, *sums in rollups] == [
        ("2026-11-02", 1, Decimal("0.01"), Decimal("0.04")), ("2026-11-03", 1, Decimal("0.02"), Decimal("0.08"))
    ]


def test_the_accounts_own_use_has_its_own_rollup():
    assert store_logs(None, [_log("req-a", "1.5")], Decimal(1)) == 1
    assert store_logs(None, [_log("req-b", "0.5")], Decimal(1)) == 1
    rollup = DailyRollup.objects.get(key=None)
    assert (rollup.requests, rollup.cost) == (2, Decimal("2.0"))


@pytest.mark.parametrize("owner", ["key", "account"])
def test_a_request_is_held_once_and_the_database_refuses_it_twice(owner):
    key = key_store.upsert_key(_sub_key()) if owner == "key" else None
    logs = [_log("req-1", "0.01"), _log("req-2", "0.02")]
    assert store_logs(key, logs, Decimal(1)) == 2
    assert store_logs(key, [*logs, _log("req-3", "0.03")], Decimal(1)) == 1
    held = UsageRecord.objects.values().get(request_id="req-1")
    held.pop("id")
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRecord.objects.create(**held)
    assert UsageRecord.objects.filter(request_id="req-1").count() == 1
    assert DailyRollup.objects.get(key=key).requests == 3


@pytest.mark.parametrize("owner", ["key", "account"])
def test_an_insert_names_the_rows_it_added_and_only_those_reach_the_rollups(owner):
    key = key_store.upsert_key(_sub_key()) if owner == "key" else None
    make_rows = ingest.usage_row_maker(key, Decimal(2))
    store_logs(key, [_log("req-1", "0.01")], Decimal(2))

    added = ingest.insert_usage(key, make_rows([_log("req-1", "0.01"), _log("req-2", "0.02"), _log("req-3", "0.03")]))

    assert sorted(row.request_id for row in added) == ["req-2", "req-3"]
    assert added[0].billed == added[0].cost * 2
    rollup = DailyRollup.objects.get(key=key)
    assert (rollup.requests, rollup.cost) == (3, Decimal("0.06"))


def test_a_deleted_key_stays_with_its_final_spend():
    key_store.upsert_key(_sub_key())
    key_store.mark_deleted("key-1")
    snapshot = KeySnapshot.objects.get()
    assert snapshot.is_deleted and snapshot.spent == Decimal("12.5")
    assert not KeySnapshot.objects.active().exists()
