"""Screenshots of every page at desktop and phone size, from a running demo, into docs/.

    bin/demo --addr 127.0.0.1:8000 --fresh     # in one terminal
    .venv/bin/python bench/screenshots.py      # passwords and key from var/demo-credentials.json
    .venv/bin/python bench/screenshots.py --owner-password ... --staff-password ... --client-key ...

The pages are the accessibility test's list (tests/test_accessibility.py, VISITS), so a page
added there is photographed here too. Before the portal's pictures the script brands the
portal as a reseller would, through the console's branding page (name, logo, colour, unit,
support contact, inference URL). Writes docs/screenshots/<who>-<page>-<size>.png (light) and
<who>-<page>-<size>-dark.png (the browser asking for dark mode) and the
README's docs/console-overview.png, docs/console-keys.png, docs/portal-home.png and
docs/portal-home-desktop.png.

    .venv/bin/python bench/screenshots.py --out /tmp/shots --no-js --locale zh-CN

takes the same pictures into another folder, for looking at rather than for the docs: with
JavaScript off (every page must work without it) and/or with the browser asking for another
language (Accept-Language and navigator.language).
"""

import argparse
import json
import re
import string
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import CHROMIUM_ARGS  # noqa: E402
from tests.test_accessibility import VISITS  # noqa: E402

DOCS = ROOT / "docs"
GALLERY = DOCS / "screenshots"
SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
# File-name suffix per colour scheme: light pictures keep their names.
SCHEMES = {"light": "", "dark": "-dark"}
CREDENTIALS = ROOT / "var" / "demo-credentials.json"
BRAND = {
    "Product name": "Acme AI",
    "Accent colour": "#0f766e",
    "Support contact": "help@acme.example",
    "Money unit": "credits",
    "Inference base URL": "https://ai.acme.example/v1",
}
LOGO_HTML = (
    "<body style='margin:0'><div style='width:96px;height:96px;border-radius:22px;background:#0f766e;"
    "color:#fff;font:700 60px system-ui;display:flex;align-items:center;justify-content:center'>A</div></body>"
)


def slug(path):
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "index"


def sign_in(page, base, who, options):
    if who in ("owner", "staff"):
        page.goto(f"{base}/login/")
        page.fill("#id_username", who)
        page.fill("#id_password", options.owner_password if who == "owner" else options.staff_password)
        page.click("main button[type=submit]")
        page.wait_for_url("**/dashboard/")
    elif who == "customer":
        page.goto(f"{base}/portal/login/")
        page.fill("#id_client_key", options.client_key)
        page.click("main button[type=submit]")
        page.wait_for_url("**/portal/")


def brand_the_portal(browser, base, options):
    """Fill in the console's branding page as a reseller would, with a logo drawn here."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_content(LOGO_HTML)
    with tempfile.TemporaryDirectory() as folder:
        logo = Path(folder) / "logo.png"
        page.locator("div").screenshot(path=logo)
        sign_in(page, base, "owner", options)
        page.goto(f"{base}/dashboard/branding/")
        for label, value in BRAND.items():
            page.get_by_label(label, exact=True).fill(value)
        page.get_by_label("Logo", exact=True).set_input_files(logo)
        page.get_by_role("button", name="Save branding").click()
        page.wait_for_load_state()
    page.context.close()


def first_key_id(browser, base, options):
    page = browser.new_page()
    sign_in(page, base, "owner", options)
    page.goto(f"{base}/dashboard/keys/")
    href = page.locator("#keys tbody tr a").first.get_attribute("href")
    page.context.close()
    return href.rstrip("/").rsplit("/", 1)[-1]


def get_demo_names(key_id):
    """Values for the ``{names}`` in the visits' paths that a demo has; visits needing others are left out."""
    today = datetime.now(UTC).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return {
        "key_id": key_id,
        "last_month": f"{last_month:%Y-%m}",
        "month_start": f"{today - timedelta(days=13):%Y-%m-%d}",
        "month_end": f"{today:%Y-%m-%d}",
    }


def can_visit(visit, names):
    """A visit of a kind of user the demo has, on a page whose path needs only ``names``.

    Not the 404s: the demo runs with DEBUG on, where Django answers them with its debug page, not ours.
    """
    needed = {field for _, field, _, _ in string.Formatter().parse(visit.path) if field}
    demo_has = visit.who in ("anonymous", "owner", "staff", "customer") and needed <= set(names)
    return demo_has and not visit.fault and visit.status != 404


def fill_from_demo_credentials(options, parser):
    """What was not given on the command line, from the file the demo keeps (var/demo-credentials.json)."""
    try:
        kept = json.loads(CREDENTIALS.read_text())
    except (OSError, ValueError):
        kept = {}
    options.owner_password = options.owner_password or kept.get("passwords", {}).get("owner")
    options.staff_password = options.staff_password or kept.get("passwords", {}).get("staff")
    options.client_key = options.client_key or kept.get("client_key")
    if not (options.owner_password and options.staff_password and options.client_key):
        parser.error(f"give --owner-password, --staff-password and --client-key, or run bin/demo first ({CREDENTIALS})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--owner-password")
    parser.add_argument("--staff-password")
    parser.add_argument("--client-key")
    parser.add_argument("--out", type=Path, default=GALLERY, help="folder for the pictures (the docs' gallery by default)")
    parser.add_argument("--no-js", action="store_true", help="with JavaScript turned off")
    parser.add_argument("--locale", default="en-US", help="the language the browser asks for, e.g. zh-CN or zh-TW")
    options = parser.parse_args()
    fill_from_demo_credentials(options, parser)
    options.out.mkdir(parents=True, exist_ok=True)
    # The README's pictures are the gallery's: English, with JavaScript.
    for_docs = options.out == GALLERY and not options.no_js and options.locale == "en-US"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        brand_the_portal(browser, options.base, options)
        names = get_demo_names(first_key_id(browser, options.base, options))
        visits = [visit for visit in VISITS if can_visit(visit, names)]
        for who in sorted({visit.who for visit in visits}):
            for (size, context_options), (scheme, suffix) in product(SIZES.items(), SCHEMES.items()):
                page = browser.new_context(**context_options, color_scheme=scheme, locale=options.locale,
                                           java_script_enabled=not options.no_js).new_page()
                sign_in(page, options.base, who, options)
                for visit in (visit for visit in visits if visit.who == who):
                    path = visit.path.format(**names)
                    page.goto(options.base + path)
                    page.wait_for_load_state("networkidle")
                    # Named by the path with its names spelt out ("key" for the key's id, "last-month"),
                    # so a new demo on another day overwrites the same files.
                    name = slug(visit.path.format(**{**{name: name.replace("_", "-") for name in names}, "key_id": "key"}))
                    page.screenshot(path=options.out / f"{who}-{name}-{size}{suffix}.png", full_page=True)
                    print(f"{who:9} {size:7} {scheme:5} {path}")
                if suffix or not for_docs:
                    page.context.close()
                    continue
                if who == "owner" and size == "desktop":
                    page.goto(f"{options.base}/dashboard/")
                    page.screenshot(path=DOCS / "console-overview.png", full_page=True)
                    page.goto(f"{options.base}/dashboard/keys/")
                    page.screenshot(path=DOCS / "console-keys.png", full_page=True)
                if who == "customer":
                    page.goto(f"{options.base}/portal/")
                    name = "portal-home.png" if size == "phone" else "portal-home-desktop.png"
                    page.screenshot(path=DOCS / name, full_page=True)
                page.context.close()
        browser.close()


if __name__ == "__main__":
    main()
