"""Who may do what in the console: owners do everything, staff view and top up."""

from functools import wraps

from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from accounts.models import ConsoleProfile, Role
from accounts.two_factor import has_second_factor, needs_enrolment


def get_role(user):
    """Return the console role of a user, or None if they have no console access."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.OWNER
    try:
        return user.console_profile.role
    except ConsoleProfile.DoesNotExist:
        return None


def is_owner(user):
    return get_role(user) == Role.OWNER


def get_topup_cap(user):
    """The user's daily top-up cap in USD, or None when unlimited."""
    if is_owner(user):
        return None
    return user.console_profile.effective_topup_cap


def _forbidden(request, message):
    """A 403 page, answered directly.

    Raising PermissionDenied gives the same page but makes Django log a full
    traceback for every refused click, which buries real errors in the log.
    """
    return render(request, "403.html", {"exception": message}, status=403)


def _get_sign_in_refusal(request, allow_unenrolled=False):
    """Why a console request may not go on (a response), or None when it may.

    A user with a second factor must have used it in this session; when owners
    require two-factor sign-in, a user without one is sent to enrol first.
    """
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if get_role(user) is None:
        return _forbidden(request, _("Your account has no access to the console."))
    if not user.is_verified() and has_second_factor(user):
        logout(request)
        return redirect_to_login(request.get_full_path())
    if not allow_unenrolled and needs_enrolment(user):
        return redirect("console:two_factor")
    return None


def console_required(view=None, *, allow_unenrolled=False):
    """Let owners and staff in; send anonymous users to sign in; 403 anyone else.

    ``allow_unenrolled`` is for the page where a user sets up the second factor
    that the console requires.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            refusal = _get_sign_in_refusal(request, allow_unenrolled)
            if refusal is not None:
                return refusal
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def owner_required(view):
    """Let only owners in: staff get 403 before anything reaches the upstream."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        refusal = _get_sign_in_refusal(request)
        if refusal is not None:
            return refusal
        if get_role(request.user) != Role.OWNER:
            return _forbidden(request, _("Only an owner can do this."))
        return view(request, *args, **kwargs)

    return wrapper
