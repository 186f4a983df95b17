"""The key list's "Days left" column and sort: keys burning at different rates, from real mirrored usage."""

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.mirror_helpers import mirrored_key

pytestmark = pytest.mark.django_db

LIST_URL = reverse("console:key_list")


@pytest.fixture
def burning_keys(simulator, make_key, sync_mirror):
    """Three keys with the same budget: Fast made 6 requests today, Slow 2, Idle none; all mirrored by the sync.

    Their labels start with a search of this test's own (the simulator keeps other tests' keys).
    """
    search = f"Runway-{secrets.token_hex(3)}"
    keys = {name: make_key(budget="0.01", label=f"{search} {name}") for name in ("Fast", "Slow", "Idle")}
    simulator.chat(keys["Fast"].secret.reveal(), count=6)
    simulator.chat(keys["Slow"].secret.reveal(), count=2)
    sync_mirror(*(key.id for key in keys.values()))
    return search


def _order(html, names=("Fast", "Slow", "Idle")):
    """The given key labels in the order the table shows them."""
    table = html[html.index("<tbody>"):]
    return sorted(names, key=lambda name: table.index(f" {name}</a>"))


def _row(html, name):
    row = html[html.index(f" {name}</a>"):]
    return row[: row.index("</tr>")]


def test_the_key_list_sorts_by_days_left_soonest_first_and_idle_keys_last(owner_client, burning_keys):
    html = owner_client.get(LIST_URL, {"q": burning_keys, "sort": "days_left"}).content.decode()

    assert _order(html) == ["Fast", "Slow", "Idle"]
    assert 'aria-sort="ascending"' in html and "Days left ▲" in html
    # 6 requests of $0.000105 leave $0.00937: at $0.00009/day that is about 104 days; 2 requests: about 326.
    assert "about 104 days" in _row(html, "Fast")
    assert "about 326 days" in _row(html, "Slow")
    assert "not at this rate" in _row(html, "Idle")

    descending = owner_client.get(LIST_URL, {"q": burning_keys, "sort": "-days_left"}).content.decode()
    assert _order(descending) == ["Slow", "Fast", "Idle"]


def test_every_sort_shows_the_days_left_of_the_page(owner_client, burning_keys):
    html = owner_client.get(LIST_URL, {"q": burning_keys, "sort": "label"}).content.decode()
    assert _order(html) == ["Fast", "Idle", "Slow"]
    assert "about 104 days" in _row(html, "Fast") and "not at this rate" in _row(html, "Idle")
    assert 'data-sort-column="days_left"' in html


def test_sorting_by_days_left_works_from_the_header_with_htmx_and_from_the_search_form(owner_client, burning_keys):
    fragment = owner_client.get(LIST_URL, {"q": burning_keys, "sort": "days_left"}, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert "<html" not in body and _order(body) == ["Fast", "Slow", "Idle"]
    assert 'id="keys-sort" name="sort" value="days_left"' in body

    # Without JavaScript the search form posts its sort, and the answer is the list's URL.
    response = owner_client.post(LIST_URL, {"q": burning_keys, "sort": "days_left"})
    assert response.status_code == 302 and "sort=days_left" in response.url
    assert _order(owner_client.get(response.url).content.decode()) == ["Fast", "Slow", "Idle"]


def test_the_days_left_sort_costs_the_same_queries_at_any_number_of_keys(owner_client, settings):
    def queries_for_the_list():
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(LIST_URL, {"sort": "days_left"}).status_code == 200
        return len(captured)

    for number in range(3):
        mirrored_key(f"Few {number}")
    queries_for_the_list()  # the first request also sets up the session's own rows
    few = queries_for_the_list()
    for number in range(60):
        mirrored_key(f"Many {number}")
    assert queries_for_the_list() == few
