"""The console's branding form: validates the colour's contrast and the logo's real file type."""

from io import BytesIO

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from PIL import Image

from branding.colors import HEX_COLOR, MIN_TEXT_CONTRAST, WHITE, contrast_ratio
from branding.models import Branding
from lib.forms import ExpectedInputMixin

MAX_LOGO_BYTES = 200 * 1024
# A few hundred KB of PNG can claim 40000x40000 pixels: every portal page would make
# each browser decode gigabytes. The logo shows 28 px high, so 2048 px a side is plenty.
MAX_LOGO_SIDE = 2048
PILLOW_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
# The logo's type is read from its first bytes, never from the name or the browser's claim.
# SVG is refused: it can carry scripts, and it is text a browser may sniff as HTML.
LOGO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
WEBP_TYPE = "image/webp"


def sniff_image_type(head):
    """The image type of a file from its first 12 bytes: PNG, JPEG or WebP, else None."""
    for signature, content_type in LOGO_SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP_TYPE
    return None


def _check_logo_pixels(content, content_type):
    """Refuse a logo over MAX_LOGO_SIDE pixels a side (read from its header) or one that does not decode."""
    undecodable = forms.ValidationError(_("The logo could not be read as an image; the file may be damaged. Export it again."))
    too_large = _("at most %(side)sx%(side)s fits. It shows 28 px high: export it smaller.") % {"side": MAX_LOGO_SIDE}
    try:
        image = Image.open(BytesIO(content), formats=[PILLOW_FORMATS[content_type]])
        width, height = image.size
    except Image.DecompressionBombError:
        raise forms.ValidationError(_("The logo claims hundreds of millions of pixels; %(too_large)s") % {"too_large": too_large}) from None
    except (OSError, ValueError, SyntaxError):  # what Pillow raises for a file it cannot read (UnidentifiedImageError is an OSError)
        raise undecodable from None
    if width > MAX_LOGO_SIDE or height > MAX_LOGO_SIDE:
        raise forms.ValidationError(_("The logo is %(width)sx%(height)s pixels; %(too_large)s") % {"width": width, "height": height, "too_large": too_large})
    try:
        image.load()
    except (OSError, ValueError, SyntaxError):
        raise undecodable from None


class BrandingForm(ExpectedInputMixin, forms.ModelForm):
    expected = {
        "product_name": _("Keep the product name to 60 characters or fewer, e.g. “Acme AI”."),
        "accent_color": _("Write the colour as # and six hex digits, e.g. #3b5bdb."),
        "support_contact": _("Give an email address (help@example.com) or an https:// link, at most 200 characters."),
        "money_unit": _("Use a currency symbol or a word of at most 20 characters, e.g. € or credits."),
        "inference_base_url": _("Enter the address as an https:// link of at most 300 characters, e.g. https://ai.example.com."),
        "direct_base_url": _("Enter the address as an https:// link of at most 300 characters, e.g. https://api-direct.derouter.ai/openai/v1."),
        "legal_name": _("Keep the business name to 200 characters or fewer."),
        "postal_address": _("Keep the address to 500 characters or fewer."),
        "tax_id": _("Keep the tax id to 60 characters or fewer, e.g. DE123456789."),
        "logo_file": _("Choose a PNG, JPEG or WebP file up to 200 KB and 2048x2048 pixels, or tick “Remove the logo” (not both)."),
    }

    logo_file = forms.FileField(
        label=_("Logo"),
        required=False,
        help_text=_("PNG, JPEG or WebP, up to 200 KB and 2048x2048 pixels. It shows 28 px high beside the product name."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/webp"}),
    )
    remove_logo = forms.BooleanField(label=_("Remove the logo"), required=False)
    inference_base_url = forms.URLField(
        label=_("Inference base URL"),
        required=False,
        max_length=300,
        assume_scheme="https",
        help_text=_("The address your customers send requests to, if you put your own domain in front. Empty: derouter's."),
    )
    direct_base_url = forms.URLField(
        label=_("Direct host base URL"),
        required=False,
        max_length=300,
        assume_scheme="https",
        help_text=_("For image generation and long requests (600 s instead of Cloudflare's 100 s), e.g. "
                  "https://api-direct.derouter.ai/openai/v1. Empty: the quick starts do not mention a direct host."),
    )

    portal_language = forms.ChoiceField(
        label=_("Portal language"),
        required=False,
        choices=lambda: [("", _("Each customer's browser language")), *settings.LANGUAGES],
        help_text=_("What the portal speaks to a customer who has not chosen a language."),
    )

    class Meta:
        model = Branding
        fields = [
            "product_name", "accent_color", "support_contact", "money_unit", "inference_base_url", "direct_base_url",
            "portal_language", "legal_name", "postal_address", "tax_id",
        ]
        labels = {
            "product_name": _("Product name"),
            "accent_color": _("Accent colour"),
            "support_contact": _("Support contact"),
            "money_unit": _("Money unit"),
            "legal_name": _("Business name on receipts"),
            "postal_address": _("Address on receipts"),
            "tax_id": _("Tax id on receipts"),
        }
        help_texts = {
            "product_name": _("What your customers see as the portal's name, e.g. “Acme AI”. Empty: “Customer portal”."),
            "accent_color": _("Buttons and links, as #RRGGBB. It must keep white text readable (contrast 4.5:1 or more)."),
            "support_contact": _("Where customers ask for help: an email address or an https:// link. Empty: not shown."),
            "legal_name": _("Your business's name on card payment receipts. Empty: the product name."),
            "postal_address": _("Printed on card payment receipts."),
            "tax_id": _("Your VAT or tax number, printed on card payment receipts."),
            "money_unit": _("How amounts read in the portal: a symbol before the number (“$”, “€”) or a word after it (“credits”)."),
        }
        widgets = {
            "accent_color": forms.TextInput(attrs={"placeholder": "#3b5bdb", "maxlength": 7, "spellcheck": "false"}),
            "postal_address": forms.Textarea(attrs={"rows": 3}),
        }

    def clean_accent_color(self):
        color = self.cleaned_data["accent_color"].strip()
        if not color:
            return ""
        if not HEX_COLOR.fullmatch(color):
            raise forms.ValidationError(_("Write the colour as # and six hex digits, e.g. #3b5bdb."))
        ratio = contrast_ratio(color, WHITE)
        if ratio < MIN_TEXT_CONTRAST:
            raise forms.ValidationError(
                _("%(color)s is too light: white text on it has a contrast of %(ratio)s:1, and text needs at least %(MIN_TEXT_CONTRAST)s:1 to stay readable. Pick a darker shade.") % {"color": color, "ratio": f"{ratio:.1f}", "MIN_TEXT_CONTRAST": MIN_TEXT_CONTRAST}
            )
        return color.lower()

    def clean_support_contact(self):
        contact = self.cleaned_data["support_contact"].strip()
        if contact and not (contact.startswith("https://") or ("@" in contact and " " not in contact)):
            raise forms.ValidationError(_("Give an email address (help@example.com) or a link starting with https://."))
        return contact

    def clean_money_unit(self):
        unit = self.cleaned_data["money_unit"].strip()
        if any(character in unit for character in "<>&\"'"):
            raise forms.ValidationError(_("Use a currency symbol or a plain word, without <, >, & or quotes."))
        return unit

    def clean_logo_file(self):
        upload = self.cleaned_data.get("logo_file")
        if not upload:
            return None
        if upload.size > MAX_LOGO_BYTES:
            raise forms.ValidationError(_("The logo is %(size1024)s KB; at most 200 KB fits. Export it smaller.") % {"size1024": upload.size // 1024})
        content = upload.read()
        content_type = sniff_image_type(content[:12])
        if content_type is None:
            raise forms.ValidationError(_("The logo must be a PNG, JPEG or WebP image (SVG is not accepted)."))
        _check_logo_pixels(content, content_type)
        return content, content_type

    def save(self, commit=True):
        branding = super().save(commit=False)
        logo = self.cleaned_data.get("logo_file")
        if logo:
            branding.logo, branding.logo_content_type = logo
        elif self.cleaned_data.get("remove_logo"):
            branding.logo, branding.logo_content_type = None, ""
        if commit:
            branding.save()
        return branding
