"""Take the README's screenshots from a running demo.

    bin/demo --addr 127.0.0.1:8000            # in one terminal; note the printed passwords and key
    .venv/bin/python bench/screenshots.py --owner-password ... --client-key ...

Writes docs/console-overview.png, docs/console-keys.png and docs/portal-home.png.
"""

import argparse
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import CHROMIUM_ARGS  # noqa: E402

DOCS = ROOT / "docs"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--owner-password", required=True)
    parser.add_argument("--client-key", required=True)
    options = parser.parse_args()
    DOCS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{options.base}/login/")
        page.fill("#id_username", "owner")
        page.fill("#id_password", options.owner_password)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/")
        page.screenshot(path=DOCS / "console-overview.png", full_page=True)
        page.goto(f"{options.base}/dashboard/keys/")
        page.screenshot(path=DOCS / "console-keys.png", full_page=True)
        phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        phone.goto(f"{options.base}/portal/login/")
        phone.fill("input[name=client_key]", options.client_key)
        phone.click("button[type=submit]")
        phone.wait_for_url("**/portal/")
        phone.screenshot(path=DOCS / "portal-home.png", full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
