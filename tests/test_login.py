"""Console sign-in: roles, session rotation, CSRF (throttling: test_login_throttle.py)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_owner_signs_in_and_lands_on_the_console(client, owner):
    response = client.post("/login/", {"username": "olivia", "password": "owner-pass-1234"})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


def test_sign_in_rotates_the_session_key(client, owner):
    client.get("/login/")
    session = client.session
    session["planted"] = True
    session.save()
    planted_key = session.session_key
    client.cookies["sessionid"] = planted_key
    client.post("/login/", {"username": "olivia", "password": "owner-pass-1234"})
    assert client.cookies["sessionid"].value != planted_key


def test_wrong_password_is_refused_with_400(client, owner):
    response = client.post("/login/", {"username": "olivia", "password": "nope"})
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_user_without_a_console_role_cannot_sign_in(client, django_user_model):
    django_user_model.objects.create_user("nobody", password="nobody-pass-1234")
    response = client.post("/login/", {"username": "nobody", "password": "nobody-pass-1234"})
    assert response.status_code == 400
    assert b"no access to the console" in response.content


def test_superuser_counts_as_owner(client, django_user_model):
    django_user_model.objects.create_superuser("root", password="root-pass-1234")
    response = client.post("/login/", {"username": "root", "password": "root-pass-1234"})
    assert response.status_code == 302


def test_login_form_requires_csrf(owner):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/login/", {"username": "olivia", "password": "owner-pass-1234"})
    assert response.status_code == 403


def test_next_url_is_followed_only_on_this_site(client, owner):
    response = client.post("/login/?next=https://evil.example/", {"username": "olivia", "password": "owner-pass-1234"})
    assert response["Location"] == "/dashboard/"


def test_sign_out_ends_the_session(owner_client):
    response = owner_client.post("/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in owner_client.session


def test_sign_out_by_get_asks_to_confirm_and_keeps_the_session(owner_client):
    response = owner_client.get("/logout/")
    assert response.status_code == 200
    assert 'action="/logout/"' in response.content.decode() and "Sign out?" in response.content.decode()
    assert owner_client.get("/dashboard/").status_code == 200


def test_sign_out_by_get_when_signed_out_goes_to_sign_in(client):
    assert client.get("/logout/")["Location"] == "/login/"


def test_pages_are_marked_no_store(client):
    assert client.get("/login/")["Cache-Control"] == "no-store"


def test_base_template_declares_an_icon(client):
    body = client.get("/login/").content.decode()
    assert 'rel="icon" href="data:image/svg+xml,' in body
