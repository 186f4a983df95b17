"""What runs without a click: alert rules, webhooks, automatic top-ups, allowances, expiry,
rotations and customers' budget requests.

Every rule that fires keeps its state (armed or fired) and a crossing counter: a rule fires
once when its condition starts to hold and is armed again only when the condition clears.
The crossing number is part of every one-time token an automatic top-up uses, so two
workers evaluating the same crossing can never move money twice.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from lib import encryption, pricing
from lib.money import multiplier, plain, usd

SECRET_PURPOSE = "automation.webhook-secret"

WEBHOOK_EVENTS = {
    "key.created": _("Key created"),
    "key.edited": _("Key edited"),
    "key.topped_up": _("Key topped up"),
    "key.reclaimed": _("Budget reclaimed from a key"),
    "key.deleted": _("Key deleted"),
    "key.rotated": _("Key rotated"),
    "key.expiring": _("Key expires soon"),
    "key.low": _("Key running low"),
    "key.spent_out": _("Key spent out"),
    "account.low": _("Account running low"),
    "budget.requested": _("Budget requested"),
    "budget.approved": _("Budget request approved"),
    "budget.declined": _("Budget request declined"),
    "write.unknown": _("A write with an unknown outcome"),
    "write.mismatch": _("A write derouter did not keep in full"),
    "code.redeemed": _("Redemption code redeemed"),
    "payment.credited": _("Card payment credited"),
    "payment.refunded": _("Card payment refunded"),
}


class RuleState(models.TextChoices):
    ARMED = "armed", _("Armed")
    FIRED = "fired", _("Fired")


class AlertRule(models.Model):
    """A condition on the account or one key that sends an alert once per crossing."""

    class Kind(models.TextChoices):
        ACCOUNT_AVAILABLE_UNDER = "account_available_under", _("Account: available balance under an amount")
        ACCOUNT_RUNS_OUT_WITHIN = "account_runs_out_within", _("Account: balance runs out within N days")
        KEY_REMAINING_PERCENT_UNDER = "key_remaining_percent_under", _("Key: remaining under a share of its budget")
        KEY_REMAINING_UNDER = "key_remaining_under", _("Key: remaining under an amount")
        KEY_SPENT_OUT = "key_spent_out", _("Key: spent out")

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    sub_key_id = models.CharField(max_length=64, blank=True, help_text=_("Empty for an account rule."))
    key_label = models.CharField(max_length=200, blank=True)
    threshold = models.DecimalField(
        max_digits=20, decimal_places=4, null=True, blank=True, help_text=_("USD, percent or days, by kind.")
    )
    email_to = models.TextField(blank=True, help_text=_("Comma-separated addresses."))
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=8, choices=RuleState.choices, default=RuleState.ARMED)
    crossings = models.PositiveIntegerField(default=0)
    last_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name

    @property
    def threshold_text(self):
        """The threshold in its own unit: "$50.00", "20%", "7 days" (never the column's "50.0000")."""
        if self.threshold is None:
            return ""
        if self.kind == self.Kind.KEY_REMAINING_PERCENT_UNDER:
            return gettext("%(percent)s%%") % {"percent": multiplier(self.threshold)}
        if self.kind == self.Kind.ACCOUNT_RUNS_OUT_WITHIN:
            days = plain(self.threshold)
            return ngettext("%(days)s day", "%(days)s days", days) % {"days": multiplier(days)}
        return usd(self.threshold)

    @property
    def is_account_rule(self):
        return self.kind in (self.Kind.ACCOUNT_AVAILABLE_UNDER, self.Kind.ACCOUNT_RUNS_OUT_WITHIN)

    @property
    def recipients(self):
        return [address.strip() for address in self.email_to.split(",") if address.strip()]


class DeliveryStatus(models.TextChoices):
    NONE = "none", _("Not sent")
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    RETRYING = "retrying", _("Retrying")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class Alert(models.Model):
    """One firing of an alert rule (one crossing), with its email delivery."""

    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="alerts")
    rule_name = models.CharField(max_length=200)
    crossing = models.PositiveIntegerField()
    event_type = models.CharField(max_length=40)
    sub_key_id = models.CharField(max_length=64, blank=True)
    key_label = models.CharField(max_length=200, blank=True)
    fired_at = models.DateTimeField(default=timezone.now)
    message = models.TextField()
    value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    email_to = models.TextField(blank=True)
    email_status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.NONE)
    email_attempts = models.PositiveIntegerField(default=0)
    # When a worker claimed the email ("sending"): a claim older than the lease is taken over by a later pass.
    email_claimed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule", "crossing"], name="alert_once_per_crossing")]


class WebhookEndpoint(models.Model):
    """A receiver an owner registered: its URL, the events it wants and its signing secret."""

    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)
    # Needed to sign every delivery, so kept, but encrypted (lib.encryption, keyed from SECRET_KEY);
    # shown once when the endpoint is made, never again.
    secret_encrypted = models.CharField(max_length=400)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["url", "id"]

    def __str__(self):
        return self.url

    def set_secret(self, secret):
        self.secret_encrypted = encryption.encrypt(secret, SECRET_PURPOSE)

    def get_secret(self):
        """The signing secret, or None when it cannot be read (SECRET_KEY changed without a fallback)."""
        return encryption.decrypt(self.secret_encrypted, SECRET_PURPOSE)

    def get_event_labels(self):
        return [WEBHOOK_EVENTS.get(name, name) for name in self.events]


class WebhookDelivery(models.Model):
    """One event sent (or to be sent) to one endpoint; the body is fixed when the event happens."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(help_text=_("The same for every endpoint that receives this event."))
    event_type = models.CharField(max_length=40)
    body = models.TextField()
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due")]


class AutoTopUpRule(models.Model):
    """Top a key up by an amount when its remaining budget falls under a threshold."""

    sub_key_id = models.CharField(max_length=64)
    key_label = models.CharField(max_length=200, blank=True)
    name = models.CharField(max_length=120)
    threshold = models.DecimalField(max_digits=14, decimal_places=4, help_text=_("USD remaining."))
    amount = models.DecimalField(max_digits=14, decimal_places=4, help_text=_("USD added per crossing."))
    max_times = models.PositiveIntegerField(null=True, blank=True, help_text=_("Empty: no limit."))
    monthly_cap = models.DecimalField(
        max_digits=14, decimal_places=4, null=True, blank=True, help_text=_("USD per calendar month (UTC); empty: none.")
    )
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=8, choices=RuleState.choices, default=RuleState.ARMED)
    crossings = models.PositiveIntegerField(default=0)
    # The current crossing's attempt: a top-up settled "not applied" is tried again (with backoff) as the next one.
    crossing_attempt = models.PositiveIntegerField(default=0)
    # The highest attempt any crossing reached: the tokens of every attempt are found from it.
    max_attempt = models.PositiveIntegerField(default=0)
    last_message = models.TextField(blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["key_label", "id"]


class Allowance(models.Model):
    """A key's budget refilled to a target at the start of each day, week or month (UTC)."""

    class Period(models.TextChoices):
        DAY = "day", _("Every day")
        WEEK = "week", _("Every week (Monday)")
        MONTH = "month", _("Every month")

    sub_key_id = models.CharField(max_length=64, unique=True)
    key_label = models.CharField(max_length=200, blank=True)
    period = models.CharField(max_length=8, choices=Period.choices)
    target = models.DecimalField(max_digits=14, decimal_places=4, help_text=_("USD remaining after the refill."))
    enabled = models.BooleanField(default=True)
    last_period = models.CharField(max_length=16, blank=True, help_text=_("The last period refilled, e.g. 2026-11."))
    # The period being refilled and its attempt: a refill settled "not applied" is tried again (with backoff).
    attempt_period = models.CharField(max_length=16, blank=True)
    period_attempt = models.PositiveIntegerField(default=0)
    last_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["key_label", "id"]


class KeyExpiry(models.Model):
    """When a key ends: the worker deletes it then, so its unspent budget returns to the balance."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        DELETING = "deleting", _("Deleting")
        UNKNOWN = "unknown", _("Outcome unknown")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")

    sub_key_id = models.CharField(max_length=64, unique=True)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    secret_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    expires_at = models.DateTimeField()
    remind_days = models.PositiveIntegerField(default=3)
    notify_email = models.EmailField(blank=True, help_text=_("The customer's address for the reminder."))
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    returned = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    message = models.TextField(blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["expires_at", "id"]


class Rotation(models.Model):
    """Replacing a key by a new one with the same settings and the old one's remaining budget."""

    class Status(models.TextChoices):
        STARTED = "started", _("Started")
        CREATE_REFUSED = "create_refused", _("New key refused: nothing changed")
        CREATE_UNKNOWN = "create_unknown", _("New key: outcome unknown")
        CREATED = "created", _("New key made; old key not yet deleted")
        DELETE_FAILED = "delete_failed", _("Old key not deleted")
        DELETE_UNKNOWN = "delete_unknown", _("Old key delete: outcome unknown")
        DONE = "done", _("Done")

    token = models.UUIDField(unique=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_name = models.CharField(max_length=150)
    old_sub_key_id = models.CharField(max_length=64)
    old_key_id_short = models.CharField(max_length=64, blank=True)
    label = models.CharField(max_length=200, blank=True)
    moved_budget = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    new_sub_key_id = models.CharField(max_length=64, blank=True)
    new_key_id_short = models.CharField(max_length=64, blank=True)
    returned = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def needs_finishing(self):
        return self.status in (self.Status.CREATED, self.Status.DELETE_FAILED, self.Status.DELETE_UNKNOWN)


class BudgetRequest(models.Model):
    """A customer's request for more budget from the portal, approved or declined by staff."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for a decision")
        # Claimed by one staff member's approval: its top-up is on its way (decline is refused meanwhile).
        APPROVING = "approving", _("Being approved")
        # The approval's top-up had an unknown outcome: settled from derouter's budget later.
        CONFIRMING = "confirming", _("Being confirmed")
        APPROVED = "approved", _("Approved")
        DECLINED = "declined", _("Declined")

    sub_key_id = models.CharField(max_length=64)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    amount = models.DecimalField(
        max_digits=14, decimal_places=4, help_text=_("In the customer's display units (the multiplier applied).")
    )
    multiplier = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(1))
    note = models.CharField(max_length=500, blank=True)
    email = models.EmailField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # When an approval claimed the request: a claim whose holder died before any money moved is released after a while.
    claimed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_by_name = models.CharField(max_length=150, blank=True)
    decline_reason = models.CharField(max_length=500, blank=True)
    topup = models.ForeignKey("ledger.TopUp", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Part of the approval's top-up token: a refused approval moves on to a fresh token.
    approve_attempts = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-created_at"], name="budget_request_queue")]

    @property
    def price(self):
        """Priced as a top-up typed as what the customer gets: the customer's amount at the key's multiplier, and its cost."""
        return pricing.price_from(customer=self.amount, multiplier=self.multiplier)

    @property
    def real_amount(self):
        """The top-up in real USD, what the balance pays: the customer's amount over the key's multiplier."""
        return self.price.cost
