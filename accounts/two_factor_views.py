"""Setting up two-factor sign-in: an authenticator app, then recovery codes shown once."""

import django_otp
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST
from django.utils.translation import gettext_lazy as _

from accounts.forms import SecondFactorForm
from accounts.roles import console_required
from accounts.two_factor import (
    confirm_app_device,
    count_recovery_codes,
    get_pending_app_device,
    get_qr_data_uri,
    get_secret_text,
    has_second_factor,
    is_two_factor_required,
    replace_recovery_codes,
)
from ledger import audit
from ledger.models import AuditEvent, Outcome


def _render_codes(request, codes):
    """The recovery codes, shown this once: never stored by a browser or proxy."""
    response = render(request, "accounts/recovery_codes.html", {"codes": codes})
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


def _render_enrolment(request, device, form, status=200):
    context = {
        "form": form,
        "qr_data_uri": get_qr_data_uri(device),
        "secret_text": get_secret_text(device),
        "required": is_two_factor_required(),
    }
    response = render(request, "accounts/two_factor_enrol.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@console_required(allow_unenrolled=True)
@require_http_methods(["GET", "HEAD", "POST"])
def two_factor(request):
    """Status for an enrolled user; for anyone else the QR code, the secret and the code that confirms them."""
    user = request.user
    if has_second_factor(user):
        context = {"codes_left": count_recovery_codes(user), "required": is_two_factor_required()}
        return render(request, "accounts/two_factor.html", context)
    device = get_pending_app_device(user)
    if request.method != "POST":
        return _render_enrolment(request, device, SecondFactorForm())
    form = SecondFactorForm(request.POST)
    if not form.is_valid():
        return _render_enrolment(request, device, form, status=400)
    if not confirm_app_device(device, "".join(form.cleaned_data["code"].split())):
        form.add_error("code", _("That code did not match. Check that your phone's clock is right and type the code it shows now."))
        return _render_enrolment(request, device, form, status=400)
    device.refresh_from_db()
    codes = replace_recovery_codes(user)
    # This session has just proved the second factor.
    django_otp.login(request, device)
    audit.record(user, AuditEvent.Action.ENROL_2FA, Outcome.OK, subject_name=user.get_username())
    return _render_codes(request, codes)


@console_required
@require_POST
def recovery_codes(request):
    """A fresh set of recovery codes; the old ones stop working."""
    if not has_second_factor(request.user):
        return redirect("console:two_factor")
    codes = replace_recovery_codes(request.user)
    audit.record(request.user, AuditEvent.Action.RECOVERY_CODES, Outcome.OK, subject_name=request.user.get_username())
    return _render_codes(request, codes)
