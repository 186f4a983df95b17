import pytest
from tests.helpers import new_page, sign_in
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def test_repro(browser, live_server, owner, make_key, simulator):
    make_key("5", label="Repro")
    page = new_page(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(live_server.url + "/dashboard/")
    page.wait_for_load_state("networkidle")
    print("WIDTH", page.evaluate("document.documentElement.scrollWidth"))
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *')).map(e => [e.tagName + '.' + e.className + '#' + e.id, Math.round(e.getBoundingClientRect().right)]).filter(x => x[1] > 392).slice(0, 15)""")
    print("WIDE", wide)
