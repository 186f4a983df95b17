"""Who sees what of the money: owners see real costs and margins; staff only when allowed."""

from dataclasses import dataclass
from decimal import Decimal

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


@dataclass(frozen=True)
class ClientFigures:
    """A key's budget, spent and remaining as its client sees them: derouter's figures times the multiplier."""

    budget: Decimal
    spent: Decimal
    remaining: Decimal


def as_client_sees(sub_key):
    """The key's money in the client's units, for whoever may not see real costs.

    Real budget and remaining give the real spend away (their difference), so all three are
    shown as the client sees them, never one real figure beside a billed one.
    """
    multiplier = sub_key.display_multiplier
    return ClientFigures(sub_key.budget * multiplier, sub_key.spent * multiplier, sub_key.remaining * multiplier)


def get_key_figures(sub_key, show_margins):
    """What the console shows of a key's money: derouter's own figures, or the client's when margins are hidden."""
    return sub_key if show_margins else as_client_sees(sub_key)


# Audit changes that would show the markup: hidden, with the markup itself, from whoever may not see margins.
MARGIN_CHANGE_FIELDS = {"display multiplier", "display_multiplier"}


def hide_margin_changes(changes, show_margins):
    """The audit ``Change`` list without the multiplier's changes, unless margins may be seen."""
    return changes if show_margins else [change for change in changes if change.field not in MARGIN_CHANGE_FIELDS]
