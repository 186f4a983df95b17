"""Second factors on django-otp: an authenticator app (TOTP) plus one-time recovery codes."""

import base64
import io
from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp import user_has_device, verify_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ConsoleSettings
from accounts.sessions import end_sessions

RECOVERY_CODE_COUNT = 10
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"


def has_second_factor(user):
    return user_has_device(user, confirmed=True)


def is_two_factor_required():
    return ConsoleSettings.load().require_two_factor


def needs_enrolment(user):
    """True when the console requires a second factor and this user has none yet."""
    return is_two_factor_required() and not has_second_factor(user)


def get_pending_app_device(user):
    """The user's unconfirmed authenticator device, made on first visit of the enrolment page."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)
    return device


def get_secret_text(device):
    """The device's secret as people type it into an authenticator app (base32, in groups of four)."""
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[start : start + 4] for start in range(0, len(secret), 4))


def get_qr_data_uri(device):
    """The device's otpauth:// URL as an SVG QR code in a data: URI (an <img>, so no inline styles)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def confirm_app_device(device, token):
    """Confirm a pending device with a code from the app; True when it matched."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if not device.verify_token(token):
            return False
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
    return True


def replace_recovery_codes(user):
    """Give the user a fresh set of recovery codes (the old ones stop working); returns them."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def count_recovery_codes(user):
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def verify_second_factor(user, code):
    """The device that accepts the code (six digits from the app, or a recovery code), or None.

    Each device keeps django-otp's throttle: after a failure the next try must
    wait 1, 2, 4, 8… seconds, so codes cannot be guessed quickly.
    """
    code = "".join(code.split()).lower()
    if code.isascii() and code.isdigit():
        devices = TOTPDevice.objects.filter(user=user, confirmed=True)
    else:
        devices = StaticDevice.objects.filter(user=user, confirmed=True)
    for device in devices:
        verified = verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


def remove_second_factors(user):
    """Delete every device of the user (a lost phone) and end their sessions."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        end_sessions(user)

