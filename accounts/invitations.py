"""One-time invitation links: a signed id and nonce with an expiry, good until accepted."""

import logging
import secrets
import smtplib

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from accounts.models import Invitation

logger = logging.getLogger(__name__)

SALT = "accounts.invitation"


def create_invitation(email, role, daily_topup_cap, created_by):
    return Invitation.objects.create(
        email=email, role=role, daily_topup_cap=daily_topup_cap, nonce=secrets.token_urlsafe(24), created_by=created_by
    )


def make_token(invitation):
    return signing.dumps({"id": invitation.pk, "nonce": invitation.nonce}, salt=SALT)


def get_open_invitation(token, for_update=False):
    """The invitation the token stands for while it is unexpired and unused, else None."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.INVITATION_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    invitations = Invitation.objects.filter(pk=data.get("id"), accepted_at__isnull=True)
    if for_update:
        invitations = invitations.select_for_update()
    invitation = invitations.first()
    if invitation is None or not constant_time_compare(invitation.nonce, str(data.get("nonce"))):
        return None
    return invitation


def send_invitation(invitation, link, inviter):
    """Email the link; False when no mail server took it (the owner is shown the link either way)."""
    hours = settings.INVITATION_MAX_AGE // 3600
    # In the inviter's language: the one the console speaks to them as they invite.
    body = _(
        "%(inviter)s invited you to the derouter reseller console as %(role)s.\n\n"
        "Open this link within %(hours)s hours to choose your username and password:\n\n%(link)s\n\n"
        "The link works once. If you did not expect it, ignore this email."
    ) % {"inviter": inviter.get_username(), "role": invitation.get_role_display().lower(), "hours": hours, "link": link}
    try:
        sent = send_mail(_("Your invitation to the derouter reseller console"), body, None, [invitation.email])
    except (smtplib.SMTPException, OSError) as error:
        logger.warning("invitation email to a new user failed: %s", type(error).__name__)
        return False
    return sent == 1
