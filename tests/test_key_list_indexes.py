"""A page of the key list is read in index order on SQLite and PostgreSQL alike: no sort of every key.

The query plan is what is checked, not a timing: a plan that sorts the active keys is what
made the key list grow with their number on PostgreSQL, which does not take
"deleted_at IS NULL" as fixing the first column of an index led by deleted_at.
"""

import pytest
from django.db import connection

from dashboard.forms import KEY_SORT_COLUMNS
from mirror.models import KeySnapshot
from mirror.reads import search_keys
from tests.helpers import query_plan

pytestmark = pytest.mark.django_db

PLAIN_SORTS = [f"{prefix}{column}" for column in KEY_SORT_COLUMNS if column != "days_left" for prefix in ("", "-")]


def _sorts(plan):
    if connection.vendor == "postgresql":
        return any(line.strip().startswith(("Sort", "->  Sort", "Incremental Sort")) for line in plan.splitlines())
    return "TEMP B-TREE" in plan


@pytest.mark.parametrize("sort", PLAIN_SORTS)
def test_a_page_of_the_key_list_is_read_in_order_from_an_index(sort):
    plan = query_plan(search_keys("", sort)[:25])
    assert "snapshot_active_" in plan and not _sorts(plan), plan


def test_the_snapshots_freshness_reads_one_index_entry():
    query = KeySnapshot.objects.active().order_by("refreshed_at").values_list("refreshed_at", flat=True)[:1]
    plan = query_plan(query)
    assert "snapshot_active_refreshed" in plan and not _sorts(plan), plan
