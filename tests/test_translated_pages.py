"""Every page a person visits speaks Chinese to a Chinese browser: no English left, the right lang attribute, valid HTML.

The pages are those of the accessibility walk (tests/test_accessibility.py's VISITS), fetched as they
first load, by each kind of user, with the browser asking for Simplified and for Traditional Chinese.
The Nu HTML checker reads every page of a script in one run (axe-core sees them in the browser walk).
"""

from decimal import Decimal

import pytest
from django.test import Client

from tests.test_accessibility import OWNER_PASSWORD, STAFF_PASSWORD, VISITS, _seed, _slug, nu_errors
from tests.untranslated import find_untranslated

pytestmark = pytest.mark.django_db
LANGUAGES = {"zh-CN": "zh-Hans", "zh-TW": "zh-Hant"}


def _client_for(who, secret, accept_language):
    client = Client(HTTP_ACCEPT_LANGUAGE=accept_language)
    if who == "owner":
        client.post("/login/", {"username": "olivia", "password": OWNER_PASSWORD})
    elif who == "staff":
        client.post("/login/", {"username": "sam", "password": STAFF_PASSWORD})
    elif who == "customer":
        client.post("/portal/login/", {"client_key": secret})
    return client


@pytest.mark.parametrize("accept_language", LANGUAGES)
def test_every_page_speaks_chinese_to_a_chinese_browser(simulator, accept_language, tmp_path):
    from derouter import client as derouter_client

    def make_key(budget, label):
        return derouter_client.create_sub_key(Decimal(budget), label=label)

    secret, names = _seed(simulator, make_key)
    lang = LANGUAGES[accept_language]
    problems = []
    clients = {}
    for number, visit in enumerate(VISITS):
        if visit.who == "two-factor" or visit.fault:
            continue
        client = clients.setdefault(visit.who, _client_for(visit.who, secret, accept_language))
        path = visit.path.format(**names, portal_export_token="00000000-0000-0000-0000-000000000000")
        response = client.get(path, follow=True)
        html = response.content.decode()
        (tmp_path / f"{number:02d}-{visit.who}-{_slug(path)}.html").write_text(html)
        if f'<html lang="{lang}"' not in html:
            problems.append(f"{visit.who} {path}: not <html lang=\"{lang}\">")
        problems.extend(f"{visit.who} {path}: {text!r}" for text in find_untranslated(html))
    problems.extend(f"Nu: {error}" for error in nu_errors(tmp_path))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(sorted(set(problems)))
