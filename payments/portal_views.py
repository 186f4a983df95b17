"""The portal side of redemption codes: a customer types a code and its key is credited once."""

import logging

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods
from django.utils.translation import gettext_lazy as _

from accounts.throttle import Throttle, client_address
from branding.models import Branding
from lib.money import in_unit
from mirror.reads import get_active_key_by_secret
from payments import codes
from payments.forms import RedeemForm
from payments.models import RedemptionCode
from accounts.portal_sessions import portal_login_required, start_portal_session

logger = logging.getLogger(__name__)

SHOWN_REDEMPTIONS = 20


def _get_throttle():
    return Throttle("portal-redeem", settings.PORTAL_REDEEM_ATTEMPTS_LIMIT, settings.PORTAL_REDEEM_ATTEMPTS_WINDOW)


def _render(request, snapshot, form, status=200, **context):
    earlier = RedemptionCode.objects.filter(sub_key_id=snapshot.sub_key_id).exclude(
        state=RedemptionCode.State.UNUSED
    ).select_related("batch").order_by("-claimed_at", "-id")[:SHOWN_REDEMPTIONS] if snapshot else []
    response = render(request, "payments/portal_redeem.html", {"form": form, "redemptions": earlier, **context}, status=status)
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@portal_login_required
def redeem(request):
    """Redeem a code: counted per key and per address before it is looked at, like a sign-in."""
    snapshot = get_active_key_by_secret(request.portal_key)
    if snapshot is None:
        return _render(request, None, RedeemForm(), status=503, unavailable=True)
    if request.method != "POST":
        return _render(request, snapshot, RedeemForm())
    throttle = _get_throttle()
    subjects = (f"key:{snapshot.sub_key_id}", f"ip:{client_address(request)}")
    attempts = [throttle.hit(subject) for subject in subjects]
    over = [attempt for attempt in attempts if attempt.is_over_limit]
    if over:
        retry_after = max(attempt.retry_after for attempt in over)
        response = _render(request, snapshot, RedeemForm(), status=429, throttled_for=retry_after)
        response["Retry-After"] = str(retry_after)
        return response
    form = RedeemForm(request.POST)
    if not form.is_valid():
        return _render(request, snapshot, form, status=400)
    try:
        redemption = codes.redeem(form.cleaned_data["code"], snapshot.sub_key_id)
    except codes.RedemptionRefused as refusal:
        form.add_error("code", refusal.message)
        return _render(request, snapshot, form, status=refusal.status)
    for subject in subjects:
        throttle.forgive(subject)
    shown = in_unit(redemption.shown_amount, Branding.load().unit)
    if redemption.held:
        messages.warning(
            request,
            _("Your code for %(shown)s is held: derouter has not confirmed the top-up yet. It is settled within a few minutes; the code is used only if the top-up went through.") % {"shown": shown},
        )
    else:
        messages.success(request, _("Code redeemed: %(shown)s was added to your key.") % {"shown": shown})
    return redirect("portal_codes:redeem")


def _get_start_throttle():
    return Throttle("portal-start", settings.PORTAL_REDEEM_ATTEMPTS_LIMIT, settings.PORTAL_REDEEM_ATTEMPTS_WINDOW)


def _render_start(request, form, status=200, **context):
    return render(request, "payments/portal_start.html", {"form": form, **context}, status=status)


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def start(request):
    """Someone without a key types a starter code: a new key is made, shown once, and they are signed in with it."""
    if request.method != "POST":
        return _render_start(request, RedeemForm())
    throttle = _get_start_throttle()
    subject = f"ip:{client_address(request)}"
    attempt = throttle.hit(subject)
    if attempt.is_over_limit:
        response = _render_start(request, RedeemForm(), status=429, throttled_for=attempt.retry_after)
        response["Retry-After"] = str(attempt.retry_after)
        return response
    form = RedeemForm(request.POST)
    if not form.is_valid():
        return _render_start(request, form, status=400)
    try:
        started = codes.start(form.cleaned_data["code"])
    except codes.RedemptionRefused as refusal:
        form.add_error("code", refusal.message)
        return _render_start(request, form, status=refusal.status)
    throttle.forgive(subject)
    if started.held:
        return _render_start(request, None, status=202, held=True)
    secret = started.created.secret.reveal()
    start_portal_session(request, secret)
    response = render(request, "payments/portal_started.html", {"client_key": secret, "code": started.code})
    response["Cache-Control"] = "no-store"
    return response
