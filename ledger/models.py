"""The records of every change attempted: the audit trail, the top-up ledger, and how each write ended.

The tables keep their first names (dashboard_*): the models moved here so that every app can record changes.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    PENDING = "pending", _("Pending")
    OK = "ok", _("OK")
    REFUSED = "refused", _("Refused")
    UNKNOWN = "unknown", _("Unknown")


# Writes whose outcome is not known yet: settled later against what derouter reports.
UNSETTLED_OUTCOMES = (Outcome.PENDING, Outcome.UNKNOWN)

class AuditEvent(models.Model):
    """One change attempted in the console: who, when, what, and how it ended."""

    class Action(models.TextChoices):
        CREATE = "create", _("Create key")
        EDIT = "edit", _("Edit key")
        TOPUP = "topup", _("Top up")
        RECLAIM = "reclaim", _("Reclaim budget")
        REVEAL = "reveal", _("Reveal key")
        DELETE = "delete", _("Delete key")
        USER_INVITE = "user_invite", _("Invite user")
        USER_INVITE_WITHDRAW = "user_uninvite", _("Withdraw invitation")
        USER_JOIN = "user_join", _("Accept invitation")
        USER_ACCESS = "user_access", _("Change role or cap")
        USER_MARGINS = "user_margins", _("Allow or stop margins")
        USER_DISABLE = "user_disable", _("Disable user")
        USER_ENABLE = "user_enable", _("Enable user")
        RESET_2FA = "reset_2fa", _("Reset two-factor")
        ENROL_2FA = "enrol_2fa", _("Set up two-factor")
        RECOVERY_CODES = "recovery_codes", _("New recovery codes")
        REQUIRE_2FA = "require_2fa", _("Two-factor policy")
        BRANDING = "branding", _("Change portal branding")
        CODES_CREATE = "codes_create", _("Create redemption codes")
        CODES_REVOKE = "codes_revoke", _("Revoke redemption codes")
        MONEY_IN = "money_in", _("Change money-in settings")
        REFUND = "refund", _("Refund a card payment")
        AUTOMATION_ADD = "automation_add", _("Add automation")
        AUTOMATION_EDIT = "automation_edit", _("Change automation")
        AUTOMATION_REMOVE = "automation_del", _("Remove automation")
        WEBHOOK_ADD = "webhook_add", _("Add webhook endpoint")
        WEBHOOK_EDIT = "webhook_edit", _("Pause or resume webhook endpoint")
        WEBHOOK_REMOVE = "webhook_remove", _("Remove webhook endpoint")

    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Kept apart from the foreign key so the trail still names a deleted user.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=Action.choices)
    sub_key_id = models.CharField(max_length=64, blank=True, help_text=_("The upstream id of the Client Key."))
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True, help_text=_("The shortened key (keyId)."))
    subject_name = models.CharField(max_length=254, blank=True, help_text=_("The console user (or invited address) a user change is about."))
    changes = models.JSONField(default=dict, blank=True, help_text=_("Field: [before, after]; money as strings."))
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    message = models.TextField(blank=True, help_text=_("The upstream's message when refused or unknown."))
    # Fields a write answered as done that derouter did not keep, read back after it: {field: [asked, kept]}.
    not_applied = models.JSONField(default=dict, blank=True, help_text=_("Field: [asked, kept]; what derouter did not keep."))
    # The one-time token of the create form that asked for this change: written
    # (unique) before the upstream call, so a resubmitted form creates no second key.
    form_token = models.UUIDField(null=True, blank=True, unique=True)
    # For a create: the ids of the keys derouter listed just before it was sent. None of them can be
    # the new key, whatever its label and budget (a rotation's new key copies both from the old one).
    keys_before = models.JSONField(default=list, blank=True)
    # Settled from derouter's key list, not from its answer: a create settled "not applied" so may
    # still be found made later (a late write) and re-settled as applied.
    outcome_inferred = models.BooleanField(default=False)

    class Meta:
        db_table = "dashboard_auditevent"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="audit_newest"),
            models.Index(fields=["sub_key_id", "-created_at"], name="audit_by_key"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.key_label} {self.outcome}"


class TopUp(models.Model):
    """A ledger line: money added to a Client Key after a customer paid (or taken back from it).

    ``token`` is the one-time token of the form that asked for it; the unique
    constraint, written before the upstream call, is what stops a double
    submission from moving money twice. A ``return`` line is a delete's: the key's
    remaining budget back to the account's available balance (a negative amount),
    with the delete's audit event under the same token; it never changes a budget.
    """

    class Kind(models.TextChoices):
        MOVE = "move", _("Top-up or reclaim")
        RETURN = "return", _("Returned on delete")

    token = models.UUIDField(unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MOVE)
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150)
    sub_key_id = models.CharField(max_length=64)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=4)
    # The same move as the customer sees it: amount times the key's multiplier, read under the key's lock before the PUT.
    customer_amount = models.DecimalField(max_digits=24, decimal_places=8, null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, help_text=_("Invoice number, payment id."))
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    message = models.TextField(blank=True)
    # derouter's budget for the key read just before this move's PUT, with the key's money lock held.
    budget_before = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    # The move's place among the key's moves (taken under the key's lock): the order settlement walks.
    sequence = models.PositiveBigIntegerField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True, help_text=_("When the PUT was sent."))
    # True when the outcome was worked out from derouter's budgets rather than told by its answer.
    outcome_inferred = models.BooleanField(default=False)

    class Meta:
        db_table = "dashboard_topup"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="topup_newest"),
            models.Index(fields=["sub_key_id", "-created_at"], name="topup_by_key"),
            models.Index(fields=["actor", "created_at"], name="topup_by_actor"),
            models.Index(fields=["sub_key_id", "sequence"], name="topup_key_order"),
        ]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d} {self.key_label} +{self.amount} ({self.outcome})"
