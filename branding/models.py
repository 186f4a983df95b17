"""The reseller's brand for the customer portal: it is their product, so nothing of ours shows by default."""

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

CACHE_KEY = "branding:current"
# What the portal calls itself until the reseller names it: neutral, never ours.
DEFAULT_PRODUCT_NAME = _("Customer portal")
DEFAULT_MONEY_UNIT = "$"


class Branding(models.Model):
    """One row: how the portal looks and what it tells customers. Owners edit it in the console."""

    product_name = models.CharField(max_length=60, blank=True)
    accent_color = models.CharField(max_length=7, blank=True, help_text=_("#RRGGBB; empty keeps the default blue."))
    support_contact = models.CharField(max_length=200, blank=True, help_text=_("An email address or an https:// link."))
    money_unit = models.CharField(max_length=20, blank=True, help_text=_('A currency symbol such as "$" or "€", or a word such as "credits".'))
    inference_base_url = models.URLField(max_length=300, blank=True)
    # The direct host (no Cloudflare in front: 600 s instead of 100 s) for images and long requests.
    direct_base_url = models.URLField(max_length=300, blank=True)
    portal_language = models.CharField(
        max_length=10,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("The portal's language for customers who have not chosen one. Empty: each browser's language."),
    )
    # On customers' card payment receipts.
    legal_name = models.CharField(max_length=200, blank=True)
    postal_address = models.TextField(max_length=500, blank=True)
    tax_id = models.CharField(max_length=60, blank=True)
    logo = models.BinaryField(null=True, blank=True, editable=True)
    logo_content_type = models.CharField(max_length=20, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "branding"

    def __str__(self):
        return self.display_name

    @classmethod
    def load(cls):
        """The saved branding, or an unsaved default one; cached until the next save."""
        branding = cache.get(CACHE_KEY)
        if branding is None:
            branding = cls.objects.defer("logo").order_by("pk").first() or cls()
            cache.set(CACHE_KEY, branding, 300)
        return branding

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
        cache.delete(CACHE_KEY)

    @property
    def display_name(self):
        return self.product_name or str(DEFAULT_PRODUCT_NAME)

    def file_name(self, what):
        """A download's name for customers, headed by the product's name when the reseller gave one: "acme-ai-usage-….csv"."""
        prefix = slugify(self.product_name)
        return f"{prefix}-{what}" if prefix else what

    @property
    def unit(self):
        return self.money_unit or DEFAULT_MONEY_UNIT

    @property
    def inference_base(self):
        return self.inference_base_url or settings.DEROUTER_INFERENCE_BASE

    @property
    def direct_base(self):
        """The direct host's OpenAI base URL; empty: the quick starts leave the direct host out."""
        return self.direct_base_url

    @property
    def has_logo(self):
        # The content type, not the bytes: load() leaves the logo itself in the database.
        return bool(self.logo_content_type)

    @property
    def version(self):
        """Changes with every save, so the logo's and colours' URLs change and caches refetch them."""
        return int(self.updated_at.timestamp()) if self.updated_at else 0

    @property
    def support_link(self):
        """A mailto: or https: link for the support contact, or "" when it is neither."""
        contact = self.support_contact
        if contact.startswith("https://"):
            return contact
        if "@" in contact and " " not in contact:
            return f"mailto:{contact}"
        return ""
