"""White-label portal: owners set the portal's name, logo, colour, support contact, money unit and base URL."""

import io
import struct
import zlib
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from branding.colors import contrast_ratio
from branding.models import Branding
from derouter import client as derouter_client
from mirror.snapshot import refresh_snapshot
from tests.helpers import tiny_png

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/dashboard/branding/"


def save(owner_client, **fields):
    data = {"product_name": "", "accent_color": "", "support_contact": "", "money_unit": "", "inference_base_url": "", **fields}
    return owner_client.post(SETTINGS_URL, data)


@pytest.fixture
def portal(client, make_key):
    key = make_key("10", label="Branded Customer")
    derouter_client.update_sub_key(key.id, display_multiplier=Decimal("2"))
    # The portal home shows the key from the snapshot first: mirror the new multiplier, as the worker would.
    refresh_snapshot()
    client.post("/portal/login/", {"client_key": key.secret.reveal()})
    return client


def test_only_owners_reach_the_branding_page(owner_client, staff):
    assert owner_client.get(SETTINGS_URL).status_code == 200
    staff_client = Client()
    staff_client.force_login(staff)
    assert staff_client.get(SETTINGS_URL).status_code == 403
    assert save(staff_client, product_name="Staff Brand").status_code == 403
    assert Branding.load().display_name == "Customer portal"


def test_the_portal_shows_nothing_of_derouter_by_default(portal):
    for url in ("/portal/", "/portal/logs/"):
        body = portal.get(url).content.decode()
        assert "derouter" not in body.lower(), url
        assert "Customer portal" in body


def test_the_portal_carries_the_resellers_name_unit_and_address(owner_client, portal):
    response = save(
        owner_client, product_name="Acme AI", money_unit="credits", support_contact="help@acme.example",
        inference_base_url="https://ai.acme.example/v1",
    )
    assert response.status_code == 302
    body = portal.get("/portal/").content.decode()
    assert "<title>Branded Customer · Acme AI</title>" in body
    assert '<a class="brand" href="/portal/">Acme AI</a>' in body
    assert 'data-testid="budget">20.00 credits<' in body
    assert "https://ai.acme.example/v1/chat/completions" in body
    assert 'href="mailto:help@acme.example"' in body


def test_a_symbol_unit_goes_before_the_number(owner_client, portal):
    save(owner_client, money_unit="€")
    assert 'data-testid="budget">€20.00<' in portal.get("/portal/").content.decode()


def test_an_accent_colour_too_light_for_white_text_is_refused_with_its_contrast(owner_client):
    response = save(owner_client, accent_color="#ffd43b")
    body = response.content.decode()
    assert response.status_code == 400
    assert f"contrast of {contrast_ratio('#ffd43b', '#ffffff'):.1f}:1" in body and "at least 4.5:1" in body
    assert Branding.load().accent_color == ""


def test_a_readable_accent_colour_reaches_the_portal_as_a_stylesheet(owner_client, portal, client):
    assert save(owner_client, accent_color="#1D4ED8").status_code == 302
    branding = Branding.load()
    assert branding.accent_color == "#1d4ed8"
    assert f'href="/portal/brand/colors-{branding.version}.css"' in portal.get("/portal/").content.decode()
    css = client.get(f"/portal/brand/colors-{branding.version}.css")
    assert css["Content-Type"].startswith("text/css") and "--reseller-accent: #1d4ed8" in css.content.decode()


def test_a_png_logo_is_served_back_with_its_checked_type(owner_client, portal, client):
    upload = SimpleUploadedFile("logo.svg", tiny_png(), content_type="image/svg+xml")
    response = owner_client.post(SETTINGS_URL, {"product_name": "Acme AI", "logo_file": upload})
    assert response.status_code == 302
    version = Branding.load().version
    assert f'src="/portal/brand/logo-{version}"' in portal.get("/portal/").content.decode()
    logo = client.get(f"/portal/brand/logo-{version}")
    assert logo.status_code == 200 and logo["Content-Type"] == "image/png"
    assert logo["X-Content-Type-Options"] == "nosniff"
    assert logo.content == tiny_png()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "SVG is not accepted"),
        ("logo.png", b"<html><script>alert(1)</script></html>", "must be a PNG, JPEG or WebP"),
        ("logo.png", b"\x89PNG\r\n\x1a\n" + b"0" * (201 * 1024), "at most 200 KB"),
    ],
)
def test_a_logo_that_is_not_a_small_png_jpeg_or_webp_is_refused(owner_client, name, content, message):
    response = owner_client.post(SETTINGS_URL, {"logo_file": SimpleUploadedFile(name, content)})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Branding.load().has_logo


def png_claiming(width, height, pixel_rows=b""):
    """A PNG whose header claims width x height pixels, with as little pixel data as given."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixel_rows)) + chunk(b"IEND", b"")


def pillow_png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "#3b5bdb").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (png_claiming(40000, 40000), "at most 2048x2048 fits"),
        (png_claiming(4000, 4000), "4000x4000 pixels; at most 2048x2048 fits"),
        (pillow_png(2049, 10), "2049x10 pixels; at most 2048x2048"),
        (pillow_png(10, 3000), "10x3000 pixels; at most 2048x2048"),
        (png_claiming(20, 20, b"\x00" * 7), "could not be read as an image"),
        (b"\xff\xd8\xff" + b"not a jpeg at all" * 10, "could not be read as an image"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 garbage", "could not be read as an image"),
    ],
)
def test_a_logo_over_2048_pixels_a_side_or_not_decodable_is_refused(owner_client, content, message):
    response = owner_client.post(SETTINGS_URL, {"logo_file": SimpleUploadedFile("logo.png", content)})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Branding.load().has_logo


def test_a_logo_of_2048_pixels_a_side_is_accepted(owner_client):
    response = owner_client.post(SETTINGS_URL, {"logo_file": SimpleUploadedFile("logo.png", pillow_png(2048, 2048))})
    assert response.status_code == 302
    assert Branding.load().has_logo


def test_no_logo_is_a_404(client):
    assert client.get("/portal/brand/logo-0").status_code == 404


def test_a_logo_can_be_removed(owner_client):
    owner_client.post(SETTINGS_URL, {"logo_file": SimpleUploadedFile("l.png", tiny_png())})
    assert Branding.load().has_logo
    save(owner_client, remove_logo="on")
    assert not Branding.load().has_logo


def test_saving_branding_writes_an_audit_event_saying_what_changed(owner_client, owner):
    from ledger.models import AuditEvent

    save(owner_client, product_name="Acme AI", money_unit="credits")
    logo = SimpleUploadedFile("logo.png", tiny_png(), content_type="image/png")
    save(owner_client, product_name="Acme AI", money_unit="€", accent_color="#0b7285", logo_file=logo)
    save(owner_client, product_name="Acme AI", money_unit="€", accent_color="#0b7285")  # nothing changed

    events = list(AuditEvent.objects.filter(action=AuditEvent.Action.BRANDING).order_by("pk"))
    assert len(events) == 2
    assert all(event.actor == owner and event.subject_name == "Portal branding" for event in events)
    assert events[0].changes == {"product_name": ["", "Acme AI"], "money_unit": ["", "credits"]}
    assert events[1].changes == {"money_unit": ["credits", "€"], "accent_color": ["", "#0b7285"], "logo": ["none", "image/png"]}
    trail = owner_client.get("/dashboard/audit/").content.decode()
    assert "Change portal branding" in trail and "Acme AI" in trail


def test_a_refused_branding_change_writes_no_audit_event(owner_client):
    from ledger.models import AuditEvent

    assert save(owner_client, accent_color="#ffd43b").status_code == 400
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.BRANDING).exists()
