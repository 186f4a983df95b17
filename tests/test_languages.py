"""Choosing a language: the browser's by default, a menu on every page, remembered per user and per key."""

import html

import pytest
from django.test import Client

from accounts.models import ConsoleProfile, KeyLanguage
from branding.models import Branding
from tests.helpers import new_page, sign_in

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


def _menu_return(response):
    body = response.content.decode()
    start = body.index('<input type="hidden" name="next" value="') + len('<input type="hidden" name="next" value="')
    return html.unescape(body[start:body.index('"', start)])


def _switch_and_reopen(client, language, page):
    """Switch through the menu of ``page`` (a response); the page it lands on, in the new language."""
    response = client.post("/language/", {"language": language, "next": _menu_return(page)})
    assert response.status_code == 302
    landed = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en")
    return response["Location"], landed


def test_switching_language_keeps_the_owner_on_every_kind_of_page(owner_client):
    for path in ("/dashboard/", "/dashboard/keys/?sort=-budget&q=acme", "/dashboard/audit/", "/dashboard/automation/alerts/history/"):
        location, landed = _switch_and_reopen(owner_client, "zh-hans", owner_client.get(path))
        assert (location, landed.status_code, _html_lang(landed)) == (path, 200, "zh-Hans")
        _switch_and_reopen(owner_client, "en", landed)

    # A form's result answered to a POST at an address that takes only POST: back to the page the form was on.
    invited = owner_client.post(
        "/dashboard/users/invite/", {"email": "new.person@example.com", "role": "owner"},
        HTTP_REFERER="http://testserver/dashboard/users/?tab=invitations",
    )
    assert invited.status_code == 200
    location, landed = _switch_and_reopen(owner_client, "zh-hant", invited)
    assert (location, landed.status_code, _html_lang(landed)) == ("/dashboard/users/?tab=invitations", 200, "zh-Hant")
    # Without a Referer (a browser that sends none) the page's own address is the best there is.
    refused = owner_client.post("/dashboard/users/invite/", {"email": "not an address", "role": "owner"})
    assert refused.status_code == 400 and _menu_return(refused) == "/dashboard/users/invite/"
    # A Referer from elsewhere is not followed.
    elsewhere = owner_client.post("/dashboard/users/invite/", {"email": "x"}, HTTP_REFERER="https://evil.example/")
    assert _menu_return(elsewhere) == "/dashboard/users/invite/"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_menu_follows_an_address_htmx_changed(browser, live_server, owner, simulator):
    """After a pager or filter swapped part of the page and pushed its address, switching keeps that address."""
    page = new_page(browser, viewport={"width": 1280, "height": 800})
    try:
        sign_in(page, live_server, "olivia", "owner-pass-1234")
        page.goto(f"{live_server.url}/dashboard/logs/")
        # What an htmx swap with hx-push-url does to the address.
        page.evaluate("""() => { history.pushState(null, "", "/dashboard/logs/?model=claude-sonnet-4-6");
                                 document.body.dispatchEvent(new CustomEvent("htmx:pushedIntoHistory", {bubbles: true})); }""")
        page.locator(".language-menu summary").click()
        page.locator('.language-menu button[value="zh-hant"]').click()
        page.wait_for_load_state()
        assert page.url == f"{live_server.url}/dashboard/logs/?model=claude-sonnet-4-6"
        assert page.evaluate("document.documentElement.lang") == "zh-Hant"
    finally:
        page.context.close()
