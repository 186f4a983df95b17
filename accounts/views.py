"""Console sign-in and sign-out for owners and staff."""

from django.conf import settings
from django.contrib.auth import login, logout
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from accounts.forms import ConsoleLoginForm
from accounts.roles import get_role
from lib.throttle import Throttle, client_address


# An office behind one NAT shares an address: allow it several people's worth
# of mistakes, while one username gets LOGIN_ATTEMPTS_LIMIT from anywhere.
ADDRESS_ATTEMPTS_FACTOR = 4


def _get_login_throttles():
    """Failed sign-ins counted per username and, more leniently, per address."""
    limit, window = settings.LOGIN_ATTEMPTS_LIMIT, settings.LOGIN_ATTEMPTS_WINDOW
    return (
        Throttle("console-login-user", limit, window),
        Throttle("console-login-address", limit * ADDRESS_ATTEMPTS_FACTOR, window),
    )


def _get_next_url(request):
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return next_url
    return settings.LOGIN_REDIRECT_URL


@never_cache
@csrf_protect
def login_view(request):
    """Sign an owner or staff member in; throttle failures per address and username."""
    if request.user.is_authenticated and get_role(request.user):
        return redirect(_get_next_url(request))
    form = ConsoleLoginForm(request)
    status = 200
    if request.method == "POST":
        username = request.POST.get("username", "")[:150].lower()
        user_throttle, address_throttle = _get_login_throttles()
        attempts = [(user_throttle, username), (address_throttle, client_address(request))]
        wait = max(throttle.retry_after(subject) for throttle, subject in attempts)
        if wait:
            response = render(
                request,
                "accounts/login.html",
                {"form": form, "throttled_for": wait, "next": _get_next_url(request)},
                status=429,
            )
            response["Retry-After"] = str(wait)
            return response
        form = ConsoleLoginForm(request, data=request.POST)
        if form.is_valid() and get_role(form.get_user()):
            # login() rotates the session key, so a planted session id is useless.
            login(request, form.get_user())
            user_throttle.reset(username)
            return redirect(_get_next_url(request))
        for throttle, subject in attempts:
            throttle.record_failure(subject)
        if form.is_valid():
            form.add_error(None, "This account has no access to the console.")
        status = 400
    return render(request, "accounts/login.html", {"form": form, "next": _get_next_url(request)}, status=status)


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
