"""Console pages for redemption codes: batches, their codes' states, revoking, and who may make them."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.utils.translation import ngettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.roles import console_required, is_owner, owner_required
from analytics.permissions import can_see_margins
from ledger import audit
from ledger.models import AuditEvent, Outcome
from lib.csv_export import csv_download
from lib.paging import pager_for_page
from payments import codes
from payments.forms import CodeBatchForm, CodeSettingsForm
from payments.models import CodeBatch, MoneyInSettings, RedemptionCode

BATCHES_PAGE_SIZE = 25
CODES_PAGE_SIZE = 100
NOT_ALLOWED = _("Only owners, or staff an owner allowed, can create or revoke codes.")


def _refuse_unless_manager(request):
    """A 403 page for a staff member no owner allowed to manage codes, else None."""
    if not codes.can_manage_codes(request.user):
        return render(request, "403.html", {"exception": NOT_ALLOWED}, status=403)
    return None


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@console_required
def batch_list(request):
    """Every batch, newest first, with how many of its codes are in each state."""
    page = Paginator(CodeBatch.objects.all(), BATCHES_PAGE_SIZE).get_page(request.GET.get("page"))
    counts = codes.count_states(list(page.object_list))
    rows = [(batch, counts.get(batch.pk, {})) for batch in page.object_list]
    context = {
        "rows": rows,
        "pager": pager_for_page(request, page, ngettext_lazy("%(count)s batch", "%(count)s batches", "count")),
        "can_manage": codes.can_manage_codes(request.user),
        "settings_form": CodeSettingsForm(initial={"staff_may_manage_codes": MoneyInSettings.load().staff_may_manage_codes})
        if is_owner(request.user) else None,
    }
    return render(request, "payments/code_batches.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@console_required
def batch_create(request):
    """Make a batch; its codes are shown on the answer to this POST and never again."""
    refusal = _refuse_unless_manager(request)
    if refusal is not None:
        return refusal
    if request.method == "GET":
        return render(request, "payments/code_batch_new.html", {"form": CodeBatchForm()})
    form = CodeBatchForm(request.POST)
    if not form.is_valid():
        return render(request, "payments/code_batch_new.html", {"form": form}, status=400)
    data = form.cleaned_data
    batch, texts = codes.create_batch(
        request.user, data["count"], data["amount"], data["unit"], form.get_expires_at(), data["note"], data["kind"]
    )
    return _no_store(render(request, "payments/code_batch_created.html", {"batch": batch, "texts": texts}))


@never_cache
@require_POST
@console_required
def batch_csv(request, batch_id):
    """The new batch's codes as CSV, from the codes its creation page holds (the server keeps only their digests)."""
    refusal = _refuse_unless_manager(request)
    if refusal is not None:
        return refusal
    batch = get_object_or_404(CodeBatch, pk=batch_id)
    posted = request.POST.getlist("code")
    known = set(batch.codes.filter(digest__in=[codes.digest_of(text) for text in posted]).values_list("digest", flat=True))
    texts = [text for text in posted if codes.digest_of(text) in known]
    if not texts:
        return render(request, "400.html", {"exception": _("Those are not this batch's codes.")}, status=400)
    expires = batch.expires_at.isoformat() if batch.expires_at else ""
    rows = [("code", "worth", "unit", "expires", "batch", "note")]
    rows += [(text, f"{batch.amount.normalize():f}", batch.unit, expires, batch.pk, batch.note) for text in texts]
    return _no_store(csv_download(rows, f"codes-batch-{batch.pk}.csv"))


@require_GET
@console_required
def batch_detail(request, batch_id):
    """One batch's codes: state, which key redeemed it and when."""
    batch = get_object_or_404(CodeBatch, pk=batch_id)
    page = Paginator(batch.codes.select_related("batch"), CODES_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "batch": batch,
        "page": page,
        "pager": pager_for_page(request, page, ngettext_lazy("%(count)s code", "%(count)s codes", "count")),
        "counts": codes.count_states([batch]).get(batch.pk, {}),
        "can_manage": codes.can_manage_codes(request.user),
        "worth": codes.describe_worth(batch),
        "show_margins": can_see_margins(request.user),
    }
    return render(request, "payments/code_batch.html", context)


@require_POST
@console_required
def revoke(request, batch_id):
    """Revoke one unused code (``code`` posted) or every unused code of the batch."""
    refusal = _refuse_unless_manager(request)
    if refusal is not None:
        return refusal
    batch = get_object_or_404(CodeBatch, pk=batch_id)
    code = None
    if request.POST.get("code"):
        code = get_object_or_404(RedemptionCode, pk=request.POST["code"] if request.POST["code"].isdigit() else 0, batch=batch)
    revoked = codes.revoke(request.user, batch, code)
    if revoked:
        messages.success(request, ngettext("Revoked %(count)s code.", "Revoked %(count)s codes.", revoked) % {"count": revoked})
    else:
        messages.info(request, _("Nothing to revoke: only unused codes can be revoked."))
    return redirect("payments:code_batch", batch_id=batch.pk)


@require_POST
@owner_required
def code_settings(request):
    form = CodeSettingsForm(request.POST)
    form.is_valid()
    row = MoneyInSettings.load()
    allowed = form.cleaned_data.get("staff_may_manage_codes", False)
    if allowed != row.staff_may_manage_codes:
        audit.record(request.user, AuditEvent.Action.MONEY_IN, Outcome.OK,
                     changes={"staff may manage codes": (row.staff_may_manage_codes, allowed)})
        row.staff_may_manage_codes = allowed
        row.save(update_fields=["staff_may_manage_codes"])
    messages.success(request, _("Staff may now create and revoke codes.") if allowed else _("Only owners may create and revoke codes now."))
    return redirect("payments:code_batches")
