"""Console sign-in (password, then a second factor when the user has one) and sign-out."""

import time
from dataclasses import dataclass

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice
from django.utils.translation import gettext_lazy as _

from accounts.forms import ConsoleLoginForm, SecondFactorForm
from accounts.roles import get_role
from accounts.two_factor import count_recovery_codes, has_second_factor, verify_second_factor
from accounts.throttle import Throttle, client_address, normalize_username

# An office behind one NAT shares an address: allow it several people's worth
# of mistakes, while one username from one address gets LOGIN_ATTEMPTS_LIMIT.
ADDRESS_ATTEMPTS_FACTOR = 4

# Between a correct password and the code from the app: who, how, where to, since when.
PENDING_USER_ID = "login_pending_user_id"
PENDING_BACKEND = "login_pending_backend"
PENDING_NEXT = "login_pending_next"
PENDING_SINCE = "login_pending_since"
PENDING_KEYS = (PENDING_USER_ID, PENDING_BACKEND, PENDING_NEXT, PENDING_SINCE)
PENDING_LIFETIME = 5 * 60


@dataclass(frozen=True)
class LoginThrottles:
    """Attempts per username and address (strict), per address, and per username from anywhere (lenient)."""

    pair: Throttle
    address: Throttle
    username: Throttle


def _get_login_throttles():
    limit, window = settings.LOGIN_ATTEMPTS_LIMIT, settings.LOGIN_ATTEMPTS_WINDOW
    return LoginThrottles(
        pair=Throttle("console-login-pair", limit, window),
        address=Throttle("console-login-address", limit * ADDRESS_ATTEMPTS_FACTOR, window),
        username=Throttle("console-login-user", settings.LOGIN_USERNAME_ATTEMPTS_LIMIT, window),
    )


def _get_pair_subject(username, request):
    return f"{username}\n{client_address(request)}"


def _get_next_url(request):
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return next_url
    return settings.LOGIN_REDIRECT_URL


def _render_throttled(request, template, context, wait):
    response = render(request, template, {**context, "throttled_for": wait}, status=429)
    response["Retry-After"] = str(wait)
    return response


def _start_code_step(request, user, next_url):
    """Remember who gave a correct password; the session is signed in only after the code."""
    request.session.cycle_key()
    request.session[PENDING_USER_ID] = user.pk
    request.session[PENDING_BACKEND] = user.backend
    request.session[PENDING_NEXT] = next_url
    request.session[PENDING_SINCE] = int(time.time())


def _get_pending_user(request):
    """The user between the password and the code, or None when there is none or it took too long."""
    since = request.session.get(PENDING_SINCE)
    if not isinstance(since, int) or time.time() - since > PENDING_LIFETIME:
        return None
    user = get_user_model().objects.filter(pk=request.session.get(PENDING_USER_ID), is_active=True).first()
    return user if user is not None and get_role(user) else None


def _clear_code_step(request):
    for name in PENDING_KEYS:
        request.session.pop(name, None)


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def login_view(request):
    """The password step. Every attempt is counted before it is checked.

    Refused without a look at the password: past LOGIN_ATTEMPTS_LIMIT for this
    username from this address, or four times that from this address. Past the
    lenient per-username limit (guesses from many addresses) only a correct
    password of a user with a second factor goes on, to the code step.
    """
    if request.user.is_authenticated and get_role(request.user):
        return redirect(_get_next_url(request))
    form = ConsoleLoginForm(request)
    context = {"form": form, "next": _get_next_url(request)}
    if request.method != "POST":
        return render(request, "accounts/login.html", context)

    username = normalize_username(request.POST.get("username", ""))
    address = client_address(request)
    pair_subject = _get_pair_subject(username, request)
    throttles = _get_login_throttles()
    refused = [
        attempt for attempt in (throttles.pair.hit(pair_subject), throttles.address.hit(address)) if attempt.is_over_limit
    ]
    if refused:
        return _render_throttled(request, "accounts/login.html", context, max(a.retry_after for a in refused))
    username_attempt = throttles.username.hit(username)

    form = ConsoleLoginForm(request, data=request.POST)
    user = form.get_user() if form.is_valid() else None
    if user is not None and get_role(user):
        has_device = has_second_factor(user)
        if username_attempt.is_over_limit and not has_device:
            return _render_throttled(request, "accounts/login.html", context, username_attempt.retry_after)
        throttles.pair.reset(pair_subject)
        throttles.address.forgive(address)
        throttles.username.forgive(username)
        if has_device:
            _start_code_step(request, user, _get_next_url(request))
            return redirect("login_code")
        # login() rotates the session key, so a planted session id is useless.
        login(request, user)
        return redirect(_get_next_url(request))
    if username_attempt.is_over_limit:
        return _render_throttled(request, "accounts/login.html", context, username_attempt.retry_after)
    if user is not None:
        form.add_error(None, _("This account has no access to the console."))
    return render(request, "accounts/login.html", {**context, "form": form}, status=400)


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def login_code_view(request):
    """The second step: a code from the authenticator app or a recovery code."""
    user = _get_pending_user(request)
    if user is None:
        _clear_code_step(request)
        messages.info(request, _("Sign in with your username and password first."))
        return redirect("login")
    if request.method != "POST":
        return render(request, "accounts/login_code.html", {"form": SecondFactorForm()})

    form = SecondFactorForm(request.POST)
    if not form.is_valid():
        return render(request, "accounts/login_code.html", {"form": form}, status=400)
    throttles = _get_login_throttles()
    username = normalize_username(user.get_username())
    pair_subject = _get_pair_subject(username, request)
    attempt = throttles.pair.hit(pair_subject)
    if attempt.is_over_limit:
        _clear_code_step(request)
        return _render_throttled(request, "accounts/login.html", {"form": ConsoleLoginForm(request)}, attempt.retry_after)
    device = verify_second_factor(user, form.cleaned_data["code"])
    if device is None:
        throttles.username.hit(username)
        form.add_error("code", _("That code is not right. Type the six digits your app shows now, or a recovery code."))
        return render(request, "accounts/login_code.html", {"form": form}, status=400)

    throttles.pair.reset(pair_subject)
    user.backend = request.session[PENDING_BACKEND]
    next_url = request.session.get(PENDING_NEXT) or settings.LOGIN_REDIRECT_URL
    _clear_code_step(request)
    login(request, user)
    django_otp.login(request, device)
    if isinstance(device, StaticDevice):
        left = count_recovery_codes(user)
        messages.warning(
            request,
            _("You signed in with a recovery code; %(left)s left. Set up your authenticator app again if you lost it.") % {"left": left},
        )
    return redirect(next_url)


@require_http_methods(["GET", "POST"])
def logout_view(request):
    """Sign out and end the session on the server.

    Only a POST signs out (a link or prefetch must not); a GET asks to confirm, or sends an
    already signed-out visitor to the sign-in page.
    """
    if request.method == "GET":
        if not request.user.is_authenticated:
            return redirect(settings.LOGIN_URL)
        return render(request, "accounts/logout.html")
    logout(request)
    return redirect(settings.LOGOUT_REDIRECT_URL)
