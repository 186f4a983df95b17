"""Who sees what of the money: owners see real costs and margins; staff only when allowed."""

from accounts.models import ConsoleProfile, Role
from accounts.roles import get_role


def can_see_margins(user):
    """Owners always; staff when an owner turned on their "can see margins" setting.

    Real cost and billed together give the margin away, so whoever may not see
    margins sees neither the real cost.
    """
    role = get_role(user)
    if role == Role.OWNER:
        return True
    if role != Role.STAFF:
        return False
    try:
        return user.console_profile.can_see_margins
    except ConsoleProfile.DoesNotExist:
        return False
