"""Searching the key list by a pasted full key: found by its short form, never in a URL or on the page."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_search_posts_and_redirects_to_the_short_form_of_a_pasted_full_key(owner_client, make_key):
    created = make_key("1", label="Pasted key client")
    secret = created.secret.reveal()
    response = owner_client.post(reverse("console:key_list"), {"q": f"  {secret}  "})
    assert response.status_code == 302
    assert secret not in response["Location"]
    body = owner_client.get(response["Location"]).content.decode()
    assert "Pasted key client" in body
    assert secret not in body
    assert created.key_id in body


def test_htmx_search_with_a_full_key_pushes_only_the_short_form(owner_client, make_key):
    created = make_key("1", label="Htmx pasted client")
    secret = created.secret.reveal()
    response = owner_client.post(reverse("console:key_list"), {"q": secret}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Htmx pasted client" in body
    assert secret not in body and secret not in response["HX-Push-Url"]
    assert "q=" in response["HX-Push-Url"]


def test_a_full_key_in_an_old_link_is_not_echoed(owner_client, make_key):
    created = make_key("1", label="Old link client")
    secret = created.secret.reveal()
    response = owner_client.get(reverse("console:key_list"), {"q": secret})
    assert response.status_code == 302
    assert secret not in response["Location"]


def test_an_unknown_full_key_is_dropped_from_the_search(owner_client, make_key):
    unknown = "sk-ant-" + "Q" * 40
    response = owner_client.post(reverse("console:key_list"), {"q": unknown}, follow=True)
    assert unknown not in response.content.decode()
    assert all(unknown not in url for url, _ in response.redirect_chain)


def test_the_search_form_posts_with_a_csrf_token(owner_client):
    body = owner_client.get(reverse("console:key_list")).content.decode()
    assert 'method="post" action="/dashboard/keys/" role="search"' in body
    assert 'data-hx-post="/dashboard/keys/"' in body
