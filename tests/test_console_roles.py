"""Who may do what with Client Keys: the role × action matrix, checked against the live simulator."""

import logging

import pytest
from django.urls import reverse

from accounts.models import ConsoleProfile, Role
from derouter import client as derouter_client
from tests.helpers import keys_labelled

pytestmark = pytest.mark.django_db

@pytest.fixture
def key(make_key):
    return make_key("2", label="Roles test")


def owner_only_requests(key_id):
    """Every owner-only action as (method, url, data), with valid data so only the role can stop it."""
    return [
        ("get", reverse("console:key_create"), None),
        ("post", reverse("console:key_create"), {"label": "x", "budget": "1", "rpm_limit": "60"}),
        ("get", reverse("console:key_edit", args=[key_id]), None),
        ("post", reverse("console:key_edit", args=[key_id]), {"label": "y", "rpm_limit": "30", "display_multiplier": "2"}),
        ("post", reverse("console:key_reveal", args=[key_id]), None),
        ("get", reverse("console:key_delete", args=[key_id]), None),
        ("post", reverse("console:key_delete", args=[key_id]), None),
    ]


def console_requests(key_id):
    """Every page that owners and staff may both see."""
    return [
        reverse("console:overview"),
        reverse("console:key_list"),
        reverse("console:key_detail", args=[key_id]),
    ]


def call(test_client, method, url, data=None):
    return getattr(test_client, method)(url, data or {})


def test_anonymous_is_sent_to_sign_in_everywhere(client, key, upstream_calls):
    for method, url, data in owner_only_requests(key.id):
        response = call(client, method, url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url
    for url in console_requests(key.id):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert upstream_calls() == 0


def test_staff_gets_403_for_owner_actions_and_nothing_reaches_the_upstream(staff_client, key, upstream_calls):
    for method, url, data in owner_only_requests(key.id):
        response = call(staff_client, method, url, data)
        assert response.status_code == 403, (method, url)
    assert upstream_calls() == 0
    unchanged = next(sub_key for sub_key in derouter_client.list_sub_keys() if sub_key.id == key.id)
    assert unchanged.label == "Roles test"


def test_staff_sees_the_console_pages(staff_client, key):
    for url in console_requests(key.id):
        assert staff_client.get(url).status_code == 200, url


def test_staff_key_page_hides_owner_buttons(staff_client, key):
    body = staff_client.get(reverse("console:key_detail", args=[key.id])).content.decode()
    assert reverse("console:key_topup", args=[key.id]) in body
    for name in ("console:key_edit", "console:key_reveal", "console:key_delete"):
        assert reverse(name, args=[key.id]) not in body


def test_owner_may_do_everything(owner_client, key):
    statuses = [call(owner_client, method, url, data).status_code for method, url, data in owner_only_requests(key.id)]
    # Create form, created page, edit form, edit redirect, reveal page, delete confirm, delete redirect.
    assert statuses == [200, 200, 200, 302, 200, 200, 302]
    for url in console_requests(key.id)[:2]:
        assert owner_client.get(url).status_code == 200


def test_user_without_console_profile_gets_403(client, django_user_model, key, upstream_calls):
    user = django_user_model.objects.create_user("nobody", password="nobody-pass-1234")
    client.force_login(user)
    for url in console_requests(key.id):
        assert client.get(url).status_code == 403
    for method, url, data in owner_only_requests(key.id):
        assert call(client, method, url, data).status_code == 403
    assert upstream_calls() == 0


def test_superuser_counts_as_owner(client, django_user_model, key):
    admin = django_user_model.objects.create_superuser("root", password="root-pass-1234")
    client.force_login(admin)
    assert client.get(reverse("console:key_create")).status_code == 200
    response = client.post(reverse("console:key_reveal", args=[key.id]))
    assert response.status_code == 200
    assert key.secret.reveal() in response.content.decode()


def test_inactive_owner_gets_no_access(client, owner, key):
    owner.is_active = False
    owner.save()
    client.force_login(owner)
    response = client.get(reverse("console:key_list"))
    assert response.status_code in (302, 403)


def test_demoted_owner_loses_owner_actions(client, owner, key, upstream_calls):
    ConsoleProfile.objects.filter(user=owner).update(role=Role.STAFF)
    client.force_login(owner)
    assert client.post(reverse("console:key_reveal", args=[key.id])).status_code == 403
    assert upstream_calls() == 0


def test_the_upstream_call_counter_counts(owner_client, key, upstream_calls):
    owner_client.get(reverse("console:overview"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="account-balance")
    assert upstream_calls() == 1
    owner_client.get(reverse("console:key_create"))
    assert upstream_calls() == 2


# Bug: every refused staff action wrote two full Python tracebacks into the log.
@pytest.mark.django_db
def test_a_refused_staff_action_logs_no_traceback(staff_client, make_key, caplog):
    created = make_key(label="QA staff refused")
    try:
        with caplog.at_level(logging.WARNING, logger="django.request"):
            for path in ("/dashboard/keys/new/", f"/dashboard/keys/{created.id}/reveal/", f"/dashboard/keys/{created.id}/delete/"):
                response = staff_client.post(path, {})
                assert response.status_code == 403
                assert "Only an owner can do this." in response.content.decode()
        assert all(record.exc_info is None for record in caplog.records)
        assert [key.id for key in keys_labelled("QA staff refused")] == [created.id]
    finally:
        derouter_client.delete_sub_key(created.id)
