"""Console sessions that end at once when an owner disables a user or resets their second factor.

Each session remembers the user's session epoch from its sign-in; raising the
epoch (one UPDATE) makes every older session sign out on its next request.
"""

from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.db.models import F
from django.dispatch import receiver

from accounts.models import SessionEpoch

SESSION_EPOCH_KEY = "console_session_epoch"


def get_session_epoch(user):
    return SessionEpoch.objects.filter(user=user).values_list("epoch", flat=True).first() or 0


def end_sessions(user):
    """Every session the user has open stops working on its next request."""
    SessionEpoch.objects.get_or_create(user=user)
    SessionEpoch.objects.filter(user=user).update(epoch=F("epoch") + 1)


@receiver(user_logged_in, dispatch_uid="accounts.remember_session_epoch")
def remember_session_epoch(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_EPOCH_KEY] = get_session_epoch(user)


class SessionEpochMiddleware:
    """Sign out a session whose user was disabled, or whose epoch was raised since it signed in."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and (
            not user.is_active or request.session.get(SESSION_EPOCH_KEY, 0) != get_session_epoch(user)
        ):
            logout(request)
        return self.get_response(request)
