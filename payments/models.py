"""Money customers bring in themselves: redemption codes (and, below, card payments).

A code is stored only as the SHA-256 of its text: the text is shown once, when its batch
is made. Its state moves unused -> redeeming (claimed by one key, the top-up under way)
-> redeemed, or back to unused when derouter refused the top-up; an unused code can be
revoked. "Expired" is not stored: an unused code of a batch past its expiry is expired.
"""

from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

from lib.encryption import decrypt, encrypt

# The ledger keeps four decimals.
LEDGER_PLACES = Decimal("0.0001")


class MoneyInSettings(models.Model):
    """The owners' choices for money in (one row)."""

    staff_may_manage_codes = models.BooleanField(
        default=False, help_text=gettext_lazy("Staff may create and revoke redemption codes, not only owners.")
    )

    @classmethod
    def load(cls):
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row


class CodeBatch(models.Model):
    """Codes made together: same worth, expiry and note."""

    class Unit(models.TextChoices):
        CUSTOMER = "customer", gettext_lazy("The customer's units (as their key shows money)")
        USD = "usd", gettext_lazy("Real money (USD)")

    class Kind(models.TextChoices):
        TOPUP = "topup", gettext_lazy("Top up the customer's key")
        STARTER = "starter", gettext_lazy("Create a new key (a starter code)")

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by_name = models.CharField(max_length=150)
    note = models.CharField(max_length=200, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=4)
    unit = models.CharField(max_length=16, choices=Unit.choices, default=Unit.CUSTOMER)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TOPUP)
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Batch #{self.pk} ({self.count} × {self.amount} {self.unit})"

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_starter(self):
        return self.kind == self.Kind.STARTER

    def real_amount(self, display_multiplier):
        """USD a code of this batch adds to a key with this markup (rounded down, never more than its worth)."""
        if self.unit == self.Unit.USD:
            return self.amount
        return (self.amount / display_multiplier).quantize(LEDGER_PLACES, rounding=ROUND_DOWN)


class RedemptionCode(models.Model):
    class State(models.TextChoices):
        UNUSED = "unused", gettext_lazy("Unused")
        REDEEMING = "redeeming", gettext_lazy("Being redeemed")
        REDEEMED = "redeemed", gettext_lazy("Redeemed")
        REVOKED = "revoked", gettext_lazy("Revoked")

    # What the console shows for an unused code past its batch's expiry.
    EXPIRED = "expired"

    batch = models.ForeignKey(CodeBatch, on_delete=models.PROTECT, related_name="codes")
    digest = models.CharField(max_length=64, unique=True, help_text=gettext_lazy("SHA-256 of the code's text."))
    hint = models.CharField(max_length=8, help_text=gettext_lazy("The code's last characters, to tell codes apart."))
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNUSED)
    # Each redemption attempt has its own top-up token; a refused attempt gives the code back with the next one.
    attempts = models.PositiveIntegerField(default=0)
    sub_key_id = models.CharField(max_length=64, blank=True)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    topup = models.ForeignKey("ledger.TopUp", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_name = models.CharField(max_length=150, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["state", "claimed_at"], name="code_by_state"),
            models.Index(fields=["sub_key_id", "-redeemed_at"], name="code_by_key"),
        ]

    def __str__(self):
        return f"…{self.hint} ({self.state})"

    @property
    def shown_state(self):
        if self.state == self.State.UNUSED and self.batch.is_expired:
            return self.EXPIRED
        return self.state

    @property
    def shown_state_label(self):
        if self.shown_state == self.EXPIRED:
            return "Expired"
        return self.get_state_display()


# ---------------------------------------------------------------- card payments (Stripe)

# Currencies Stripe counts in whole units (no cents): amounts are sent as they are.
ZERO_DECIMAL_CURRENCIES = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)


def to_minor_units(price, currency):
    """A price as Stripe's integer amount (cents, or whole units for zero-decimal currencies)."""
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return int(price)
    return int((price * 100).to_integral_value())


class StripeSettings(models.Model):
    """The owner's Stripe account (one row). Both secrets are stored encrypted and never shown again."""

    enabled = models.BooleanField(default=False)
    publishable_key = models.CharField(max_length=200, blank=True)
    secret_key_encrypted = models.TextField(blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)
    # The account the keys belong to, as Stripe reported it when they were saved (events for another are refused).
    account_id = models.CharField(max_length=64, blank=True)
    daily_orders_per_key = models.PositiveIntegerField(default=5, help_text=gettext_lazy("Paid orders a key may make per UTC day."))
    updated_at = models.DateTimeField(auto_now=True)

    SECRET_PURPOSE = "payments.stripe-secret-key"
    WEBHOOK_PURPOSE = "payments.stripe-webhook-secret"

    @classmethod
    def load(cls):
        row, _ = cls.objects.get_or_create(pk=1)
        return row

    def get_secret_key(self):
        return decrypt(self.secret_key_encrypted, self.SECRET_PURPOSE) if self.secret_key_encrypted else None

    def set_secret_key(self, value):
        self.secret_key_encrypted = encrypt(value, self.SECRET_PURPOSE)

    def get_webhook_secret(self):
        return decrypt(self.webhook_secret_encrypted, self.WEBHOOK_PURPOSE) if self.webhook_secret_encrypted else None

    def set_webhook_secret(self, value):
        self.webhook_secret_encrypted = encrypt(value, self.WEBHOOK_PURPOSE)

    @property
    def is_ready(self):
        """Customers may pay: enabled, with both keys and the webhook secret."""
        return bool(self.enabled and self.publishable_key and self.secret_key_encrypted and self.webhook_secret_encrypted)


class Package(models.Model):
    """What a customer may buy: a price in a currency, credited as an amount in the customer's units."""

    name = models.CharField(max_length=80)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, help_text=gettext_lazy("ISO code, lower case: usd, eur."))
    credit = models.DecimalField(max_digits=14, decimal_places=4, help_text=gettext_lazy("Credited in the customer's units."))
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["price", "id"]

    def __str__(self):
        return f"{self.name} ({self.price} {self.currency.upper()})"

    @property
    def amount_minor(self):
        return to_minor_units(self.price, self.currency)


class Order(models.Model):
    """One purchase of a package by a key, paid through one PaymentIntent and credited at most once."""

    class State(models.TextChoices):
        CREATED = "created", gettext_lazy("Waiting for payment")
        PAID = "paid", gettext_lazy("Paid, crediting")
        CREDITED = "credited", gettext_lazy("Credited")
        FAILED = "failed", gettext_lazy("Paid, credit failed (will be retried)")
        EXPIRED = "expired", gettext_lazy("Expired unpaid")
        REFUNDED = "refunded", gettext_lazy("Refunded")

    token = models.UUIDField(unique=True, help_text=gettext_lazy("The order's id in addresses and in Stripe's metadata."))
    created_at = models.DateTimeField(auto_now_add=True)
    sub_key_id = models.CharField(max_length=64)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    package = models.ForeignKey(Package, null=True, on_delete=models.SET_NULL, related_name="orders")
    package_name = models.CharField(max_length=80)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    amount_minor = models.PositiveBigIntegerField()
    credit = models.DecimalField(max_digits=14, decimal_places=4, help_text=gettext_lazy("In the customer's units."))
    display_multiplier = models.DecimalField(max_digits=12, decimal_places=4)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=4, help_text=gettext_lazy("Real money the key gets."))
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.CREATED)
    credit_attempts = models.PositiveIntegerField(default=0)
    topup = models.ForeignKey("ledger.TopUp", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    receipt_number = models.PositiveIntegerField(null=True, blank=True, unique=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    credited_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    refund_id = models.CharField(max_length=255, blank=True)
    taken_back_usd = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["sub_key_id", "-created_at"], name="order_by_key"),
            models.Index(fields=["state", "created_at"], name="order_by_state"),
        ]

    def __str__(self):
        return f"Order {self.token} ({self.state})"


class ReceiptNumber(models.Model):
    """Hands out receipt numbers one after another: a row per paid order, its id the number."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="+")


class StripeEvent(models.Model):
    """Every Stripe event id we accepted, so a delivery seen before is not acted on again."""

    event_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    result = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]


class MoneyInCheck(models.Model):
    """One three-way check of money in: Stripe's payments and refunds, orders and code redemptions, ledger rows.

    (The ledger against derouter's budgets is the console's reconciliation; together they are the three ways.)
    """

    checked_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.CharField(max_length=150, blank=True)
    payments_checked = models.PositiveIntegerField(default=0)
    stripe_asked = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]


class MoneyInProblem(models.Model):
    class Kind(models.TextChoices):
        PAID_NOT_CREDITED = "paid_not_credited", gettext_lazy("Paid, not credited")
        CREDIT_WITHOUT_PAYMENT = "credit_no_payment", gettext_lazy("Credit without payment")
        REFUND_NOT_TAKEN_BACK = "refund_not_back", gettext_lazy("Refund not taken back")
        REFUND_NOT_RECORDED = "refund_unrecorded", gettext_lazy("Refunded at Stripe, not here")
        CODE_WITHOUT_CREDIT = "code_no_credit", gettext_lazy("Code redeemed without a credit")

    run = models.ForeignKey(MoneyInCheck, on_delete=models.CASCADE, related_name="problems")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    code = models.ForeignKey(RedemptionCode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sub_key_id = models.CharField(max_length=64, blank=True)
    key_label = models.CharField(max_length=200, blank=True)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    detail = models.TextField()

    class Meta:
        ordering = ["id"]

    @property
    def can_retry(self):
        return self.kind == self.Kind.PAID_NOT_CREDITED and self.order_id is not None
