"""A form's one-time token belongs to one action on one key.

The token is what makes a resubmitted form harmless: its first use is written
(unique) before derouter is asked, and a second use shows the first one's outcome.
That is only true for the same form: a token replayed on another key's form, or
on a form of another kind, would show one key's outcome under another's name. So
its first use also fixes what it is for, and any other use is refused.
"""

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ledger.models import AuditEvent, TopUp

ACTION_NAMES = {AuditEvent.Action.CREATE: _("creating a key"), AuditEvent.Action.TOPUP: _("a top-up"),
                AuditEvent.Action.RECLAIM: _("reclaiming budget")}


class TokenUsedElsewhere(Exception):
    """The form's token was first used for another key or another action; nothing was sent.

    Its ``message`` is in the language of the request that sent the form: the page shows it at once.
    """

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def check_form_token(token, action, sub_key_id=""):
    """Raise TokenUsedElsewhere unless the token is new or was first used for this action on this key."""
    used_for = _get_first_use(token)
    if used_for is None:
        return
    used_action, used_key_id, used_label = used_for
    if used_action != action:
        raise TokenUsedElsewhere(
            gettext("This form was already used for %(used)s, not for %(action)s. Nothing was sent: open the form "
                    "again and start over.")
            % {"used": ACTION_NAMES.get(used_action, used_action), "action": ACTION_NAMES.get(action, action)}
        )
    if str(used_key_id) != str(sub_key_id):
        raise TokenUsedElsewhere(
            gettext("This form was filled in for another key (%(key)s). Nothing was sent: open this key's form and "
                    "start over.") % {"key": used_label or used_key_id}
        )


def _get_first_use(token):
    """(action, sub_key_id, label) of the token's first use, or None if it was never used."""
    topup = TopUp.objects.filter(token=token).values_list("sub_key_id", "key_label", "amount").first()
    if topup is not None:
        action = AuditEvent.Action.RECLAIM if topup[2] < 0 else AuditEvent.Action.TOPUP
        return action, topup[0], topup[1]
    event = AuditEvent.objects.filter(form_token=token).values_list("action", "sub_key_id", "key_label").first()
    if event is not None:
        action, sub_key_id, label = event
        # A create's key id is only known once derouter answered: its token is for "no key yet".
        return action, "" if action == AuditEvent.Action.CREATE else sub_key_id, label
    return None
