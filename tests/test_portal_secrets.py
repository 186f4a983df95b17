"""Portal secrets: pasted keys with whitespace, Client Keys encrypted in the session table, a throttle that cannot overshoot."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from lib.encryption import decrypt, encrypt
from accounts.portal_sessions import SESSION_KEY, SESSION_KEY_PURPOSE
from derouter import client as derouter_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(make_key):
    created = make_key("1", label="Secret portal client")
    yield created
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


@pytest.mark.parametrize("pasted", ["{key} ", "{key}\n", "\t{key}\r\n", "  {key}"])
def test_a_pasted_key_with_surrounding_whitespace_signs_in(client, key, pasted):
    response = client.post("/portal/login/", {"client_key": pasted.format(key=key.secret.reveal())})
    assert response.status_code == 302 and response["Location"] == "/portal/"


def test_the_session_table_holds_the_key_only_encrypted(client, key):
    secret = key.secret.reveal()
    client.post("/portal/login/", {"client_key": secret})
    stored = Session.objects.get(session_key=client.session.session_key)
    assert secret not in stored.session_data
    decoded = stored.get_decoded()
    assert secret not in str(decoded)
    assert decrypt(decoded[SESSION_KEY], SESSION_KEY_PURPOSE) == secret
    assert client.get("/portal/").status_code == 200


def test_a_plain_key_left_in_an_old_session_is_not_used(client, key):
    session = client.session
    session[SESSION_KEY] = key.secret.reveal()
    session.save()
    client.cookies["sessionid"] = session.session_key
    response = client.get("/portal/")
    assert response.status_code == 302 and response["Location"] == "/portal/login/"


def test_a_key_encrypted_under_another_secret_key_is_not_readable(settings):
    token = encrypt("sk-ant-example", SESSION_KEY_PURPOSE)
    settings.SECRET_KEY = "another-secret-key-" + "q" * 40
    settings.SECRET_KEY_FALLBACKS = []
    assert decrypt(token, SESSION_KEY_PURPOSE) is None


def test_a_rotated_secret_key_still_reads_sessions_through_its_fallback(settings):
    token = encrypt("sk-ant-example", SESSION_KEY_PURPOSE)
    old = settings.SECRET_KEY
    settings.SECRET_KEY = "another-secret-key-" + "q" * 40
    settings.SECRET_KEY_FALLBACKS = [old]
    assert decrypt(token, SESSION_KEY_PURPOSE) == "sk-ant-example"


def test_successful_portal_sign_ins_do_not_use_up_an_address(key, settings):
    settings.PORTAL_LOGIN_ATTEMPTS_LIMIT = 2
    for _ in range(4):
        assert Client().post("/portal/login/", {"client_key": key.secret.reveal()}).status_code == 302
