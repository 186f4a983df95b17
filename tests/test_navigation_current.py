"""The console's top navigation marks exactly one link as the current page, on Automation pages too."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from automation.models import BudgetRequest

pytestmark = pytest.mark.django_db

TOP_NAV_CURRENT = re.compile(r'<a href="[^"]*" class="active" aria-current="page">([^<]+)')


def _current_top_links(body):
    nav = body.split('class="nav console-nav"', 1)[1].split('class="nav-menu', 1)[0]
    return [name.strip() for name in TOP_NAV_CURRENT.findall(nav)]


@pytest.mark.parametrize(
    ("url_name", "expected"),
    [
        ("automation:overview", "Automation"),
        ("automation:alert_rules", "Automation"),
        ("automation:webhooks", "Automation"),
        ("automation:requests", "Requests"),
        ("console:key_list", "Client Keys"),
    ],
)
def test_one_top_link_is_current(owner_client, url_name, expected):
    response = owner_client.get(reverse(url_name))
    assert _current_top_links(response.content.decode()) == [expected]


def test_a_key_rotation_page_marks_automation_alone(owner_client, make_key):
    created = make_key(budget="5", label="Rotating Co")
    response = owner_client.get(reverse("automation:key_rotate", args=[created.id]))
    assert _current_top_links(response.content.decode()) == ["Automation"]


def test_approving_a_request_marks_requests_alone(owner_client, make_key):
    created = make_key(budget="5", label="Asking Co")
    request = BudgetRequest.objects.create(
        sub_key_id=created.id, key_label="Asking Co", key_id_short=created.key_id, amount=Decimal("5"), multiplier=Decimal(1)
    )
    response = owner_client.get(reverse("automation:request_approve", args=[request.pk]))
    assert _current_top_links(response.content.decode()) == ["Requests"]


def test_the_automation_sub_navigation_marks_its_page(owner_client):
    body = owner_client.get(reverse("automation:alert_rules")).content.decode()
    assert re.search(r'href="/dashboard/automation/alerts/" aria-current="page"', body)
