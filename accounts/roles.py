"""Who may do what in the console: owners do everything, staff view and top up."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

from accounts.models import ConsoleProfile, Role


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


def console_required(view):
    """Let owners and staff in; send anonymous users to sign in; 403 anyone else."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if get_role(request.user) is None:
            return _forbidden(request, "Your account has no access to the console.")
        return view(request, *args, **kwargs)

    return wrapper


def owner_required(view):
    """Let only owners in: staff get 403 before anything reaches the upstream."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if get_role(request.user) != Role.OWNER:
            return _forbidden(request, "Only an owner can do this.")
        return view(request, *args, **kwargs)

    return wrapper
