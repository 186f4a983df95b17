"""A page of a list that fits on its first page is read without counting; every page is what Paginator gives."""

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lib.paging import get_page_counting_short_lists
from mirror.models import KeySnapshot
from tests.mirror_helpers import mirrored_key

pytestmark = pytest.mark.django_db


def _same_page(rows, per_page, number):
    page = get_page_counting_short_lists(rows, per_page, number)
    expected = Paginator(rows, per_page).get_page(number)
    assert (page.number, page.paginator.count, page.paginator.num_pages) == (expected.number, expected.paginator.count, expected.paginator.num_pages)
    assert list(page.object_list) == list(expected.object_list)
    assert (page.start_index(), page.end_index()) == (expected.start_index(), expected.end_index())


def test_every_page_of_short_and_long_lists_is_the_paginators_page():
    for number in range(7):
        mirrored_key(f"Key {number}")
    rows = KeySnapshot.objects.order_by("label")
    for per_page in (3, 7, 10):
        for number in (1, 2, 3, 99):
            _same_page(rows, per_page, number)
    _same_page(KeySnapshot.objects.none(), 5, 1)


def test_a_list_that_fits_on_its_first_page_costs_one_query():
    for number in range(3):
        mirrored_key(f"Key {number}")
    with CaptureQueriesContext(connection) as queries:
        page = get_page_counting_short_lists(KeySnapshot.objects.order_by("label"), 5, 1)
        assert [key.label for key in page.object_list] == ["Key 0", "Key 1", "Key 2"]
    assert len(queries) == 1
