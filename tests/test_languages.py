"""Choosing a language: the browser's by default, a menu on every page, remembered per user and per key."""

import pytest
from django.test import Client

from accounts.models import ConsoleProfile, KeyLanguage
from branding.models import Branding

pytestmark = pytest.mark.django_db


def _html_lang(response):
    body = response.content.decode()
    start = body.index('<html lang="') + len('<html lang="')
    return body[start:body.index('"', start)]


def test_the_browsers_language_is_the_default(client):
    assert _html_lang(client.get("/login/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5")) == "zh-Hans"
    assert _html_lang(Client().get("/login/", HTTP_ACCEPT_LANGUAGE="zh-TW")) == "zh-Hant"
    assert _html_lang(Client().get("/login/", HTTP_ACCEPT_LANGUAGE="fr-FR")) == "en"


def test_every_page_offers_a_language_menu_that_works_without_javascript(client):
    body = client.get("/login/").content.decode()
    assert 'action="/language/"' in body
    assert 'name="next" value="/login/"' in body
    for code in ("en", "zh-hans", "zh-hant"):
        assert f'name="language" value="{code}"' in body


def test_switching_language_keeps_the_person_on_the_same_page(client):
    response = client.post("/language/", {"language": "zh-hant", "next": "/login/?next=/dashboard/"})
    assert response.status_code == 302 and response["Location"] == "/login/?next=/dashboard/"
    assert _html_lang(client.get("/login/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-Hant"


def test_switching_refuses_an_unknown_language_and_an_offsite_return(client):
    assert client.post("/language/", {"language": "xx", "next": "/login/"}).status_code == 400
    response = client.post("/language/", {"language": "zh-hans", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_console_users_choice_follows_them_to_a_new_device(owner):
    first = Client()
    first.post("/login/", {"username": "olivia", "password": "owner-pass-1234"})
    first.post("/language/", {"language": "zh-hans", "next": "/dashboard/"})
    assert ConsoleProfile.objects.get(user=owner).language == "zh-hans"

    elsewhere = Client()
    elsewhere.post("/login/", {"username": "olivia", "password": "owner-pass-1234"})
    assert _html_lang(elsewhere.get("/dashboard/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-Hans"


def test_a_customers_choice_is_kept_for_its_key(make_key, sync_mirror):
    created = make_key("1", label="Language customer")
    sync_mirror()
    customer = Client()
    customer.post("/portal/login/", {"client_key": created.secret.reveal()})
    response = customer.post("/portal/language/", {"language": "zh-hant", "next": "/portal/"})
    assert response["Location"] == "/portal/"
    assert KeyLanguage.get_for_key(created.id) == "zh-hant"

    new_browser = Client()
    new_browser.post("/portal/login/", {"client_key": created.secret.reveal()})
    assert _html_lang(new_browser.get("/portal/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-Hant"


def test_the_reseller_sets_the_portals_default_language():
    Branding(portal_language="zh-hans").save()
    assert _html_lang(Client().get("/portal/login/", HTTP_ACCEPT_LANGUAGE="en")) == "zh-Hans"
    # The console is the reseller's own: it keeps following the browser.
    assert _html_lang(Client().get("/login/", HTTP_ACCEPT_LANGUAGE="en")) == "en"
