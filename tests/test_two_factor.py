"""Two-factor sign-in: enrolment with a QR code, the code step, recovery codes, the owners' requirement."""

import re

import pytest
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ConsoleSettings
from accounts.two_factor import replace_recovery_codes
from ledger.models import AuditEvent

pytestmark = pytest.mark.django_db

RIGHT = {"username": "olivia", "password": "owner-pass-1234"}


def code_for(device):
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def code_from_secret(secret_text):
    """What an authenticator app shows for the key printed on the enrolment page."""
    import base64

    key = base64.b32decode(secret_text.replace(" ", "") + "=" * (-len(secret_text.replace(" ", "")) % 8))
    return f"{TOTP(key).token():06d}"


@pytest.fixture
def enrolled_owner(owner):
    device = TOTPDevice.objects.create(user=owner, name="app", confirmed=True)
    codes = replace_recovery_codes(owner)
    return owner, device, codes


def test_enrolment_shows_a_qr_code_image_and_the_key(owner_client):
    response = owner_client.get(reverse("console:two_factor"))
    body = response.content.decode()
    assert response.status_code == 200
    assert '<img src="data:image/svg+xml;base64,' in body
    assert 'alt="QR code for your authenticator app"' in body
    assert 'id="totp-secret"' in body
    assert "style=" not in body


def test_enrolment_with_the_code_from_the_app_turns_it_on_and_shows_recovery_codes(owner_client, owner):
    body = owner_client.get(reverse("console:two_factor")).content.decode()
    secret = re.search(r'id="totp-secret" value="([A-Z2-7 ]+)"', body).group(1)
    response = owner_client.post(reverse("console:two_factor"), {"code": code_from_secret(secret)})
    assert response.status_code == 200
    assert "Your recovery codes" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert TOTPDevice.objects.filter(user=owner, confirmed=True).count() == 1
    assert StaticToken.objects.filter(device__user=owner).count() == 10
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ENROL_2FA, subject_name="olivia").exists()
    # The session that enrolled counts as verified: the console stays open.
    assert owner_client.get(reverse("console:audit_trail")).status_code == 200


def test_a_wrong_enrolment_code_turns_nothing_on(owner_client, owner):
    owner_client.get(reverse("console:two_factor"))
    response = owner_client.post(reverse("console:two_factor"), {"code": "000000"})
    assert response.status_code == 400
    assert not TOTPDevice.objects.filter(user=owner, confirmed=True).exists()


def test_sign_in_with_a_device_needs_the_code(client, enrolled_owner):
    _, device, _ = enrolled_owner
    response = client.post("/login/", RIGHT)
    assert response["Location"] == "/login/code/"
    assert "_auth_user_id" not in client.session
    assert client.get("/dashboard/").status_code == 302
    assert client.post("/login/code/", {"code": "123456"}).status_code == 400
    assert "_auth_user_id" not in client.session


def test_the_right_code_signs_in_verified(client, enrolled_owner):
    _, device, _ = enrolled_owner
    client.post("/login/", RIGHT)
    # django-otp throttles a device after a failure; start clean.
    response = client.post("/login/code/", {"code": code_for(device)})
    assert response["Location"] == "/dashboard/"
    assert client.get("/dashboard/audit/").status_code == 200


def test_a_recovery_code_signs_in_once(client, enrolled_owner):
    _, _, codes = enrolled_owner
    client.post("/login/", RIGHT)
    response = client.post("/login/code/", {"code": codes[0].upper()}, follow=True)
    assert response.redirect_chain[-1][0] == "/dashboard/"
    assert "9 left" in response.content.decode()
    client.post("/logout/")
    client.post("/login/", RIGHT)
    assert client.post("/login/code/", {"code": codes[0]}).status_code == 400


def test_the_code_step_without_a_password_step_goes_back_to_sign_in(client):
    response = client.post("/login/code/", {"code": "123456"})
    assert response["Location"] == "/login/"


def test_code_guesses_are_throttled(client, enrolled_owner, settings):
    settings.LOGIN_ATTEMPTS_LIMIT = 3
    client.post("/login/", RIGHT)
    statuses = [client.post("/login/code/", {"code": f"{number:06d}"}).status_code for number in range(5)]
    assert 429 in statuses


def test_an_owner_can_require_two_factor_for_everyone(owner_client, staff):
    response = owner_client.post(reverse("console:two_factor_policy"), {"require_two_factor": "on"})
    assert response.status_code == 302
    assert ConsoleSettings.load().require_two_factor
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REQUIRE_2FA).exists()
    from django.test import Client

    staff_client = Client()
    staff_client.force_login(staff)
    response = staff_client.get(reverse("console:key_list"))
    assert response.status_code == 302 and response["Location"] == reverse("console:two_factor")
    assert staff_client.get(reverse("console:two_factor")).status_code == 200


def test_staff_cannot_change_the_requirement(staff_client):
    assert staff_client.post(reverse("console:two_factor_policy"), {"require_two_factor": "on"}).status_code == 403
    assert not ConsoleSettings.load().require_two_factor


def test_the_admin_sign_in_goes_through_the_console_sign_in(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
