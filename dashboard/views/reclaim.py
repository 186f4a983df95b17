"""Reclaim budget: an owner takes part of a key's unspent budget back to the account's balance."""

import uuid

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts.roles import owner_required
from dashboard import topups
from dashboard.forms import ReclaimForm
from dashboard.upstream import get_sub_key_now, get_sub_key_or_404, upstream_write_deadline
from derouter import conventions as upstream_conventions
from derouter.client import DerouterError
from ledger.formtokens import TokenUsedElsewhere
from ledger.models import AuditEvent
from lib.money import exact_usd
from django.utils.translation import gettext_lazy as _


def _render(request, sub_key, form, *, step="form", status=200, **context):
    context = {"key": sub_key, "form": form, "step": step, "supported": upstream_conventions.current().reclaim_supported,
               **context}
    return render(request, "dashboard/key_reclaim.html", context, status=status)


def _get_key_now_or_none(sub_key_id):
    try:
        return get_sub_key_now(sub_key_id)
    except DerouterError:
        return None


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
@upstream_write_deadline
def key_reclaim(request, sub_key_id):
    """Form, confirm step (what returns to the balance, what the customer's budget becomes), then one move per form."""
    sub_key = get_sub_key_or_404(sub_key_id)
    if request.method != "POST":
        return _render(request, sub_key, ReclaimForm(initial={"token": uuid.uuid4()}))
    if not upstream_conventions.current().reclaim_supported:
        return _render(request, sub_key, ReclaimForm(), status=409)

    form = ReclaimForm(request.POST)
    if not form.is_valid():
        return _render(request, sub_key, form, status=400)
    amount, note, token = (form.cleaned_data[name] for name in ("amount", "note", "token"))
    try:
        earlier = topups.find_attempt(token, sub_key, AuditEvent.Action.RECLAIM)
    except TokenUsedElsewhere as refusal:
        return render(request, "dashboard/form_used_elsewhere.html", {"message": refusal.message}, status=400)
    if earlier is not None:
        return _render(request, sub_key, form, step="result", move=earlier, returned=-earlier.amount, repeated=True,
                       current_key=_get_key_now_or_none(sub_key.id))
    if amount > max(sub_key.remaining, 0):
        form.add_error("amount", _("The key has only %(remaining)s unspent; it cannot give back more.")
                       % {"remaining": exact_usd(max(sub_key.remaining, 0))})
        return _render(request, sub_key, form, status=400)
    if "confirm" not in request.POST or "edit" in request.POST:
        step = "form" if "edit" in request.POST else "confirm"
        multiplier = sub_key.display_multiplier
        return _render(request, sub_key, form, step=step, amount=amount, new_budget=sub_key.budget - amount,
                       customer_amount=amount * multiplier, customer_budget=(sub_key.budget - amount) * multiplier)
    try:
        attempt = topups.reclaim(request.user, sub_key, amount, note, token)
    except topups.ReclaimNotSupported:
        return _render(request, sub_key, form, status=409)
    move = attempt.topup
    status = {"refused": 409, "unknown": 503}.get(move.outcome, 200)
    return _render(request, sub_key, form, step="result", move=move, returned=-move.amount, repeated=attempt.repeated,
                   current_key=_get_key_now_or_none(sub_key.id), status=status)
