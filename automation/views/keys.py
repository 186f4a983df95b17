"""Rotating a key from the console: confirm, the new key shown once, and finishing an open rotation."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST
from django.utils.translation import gettext_lazy as _

from accounts.roles import owner_required
from automation import rotation as rotations
from automation.forms import ConfirmForm
from automation.models import Rotation
from dashboard.upstream import get_sub_key_or_404
from derouter import client
from derouter.client import Unavailable


def _render_no_store(request, template, context, status=200):
    response = render(request, template, context, status=status)
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def key_rotate(request, sub_key_id):
    """Confirm, then rotate: a new key with this key's settings and remaining budget, then delete this one."""
    sub_key = get_sub_key_or_404(sub_key_id)
    if request.method != "POST":
        context = {"key": sub_key, "form": ConfirmForm(), "balance": client.get_balance()}
        return render(request, "automation/key_rotate.html", context)
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return render(request, "automation/key_rotate.html", {"key": sub_key, "form": ConfirmForm()}, status=400)
    result = rotations.rotate(request.user, sub_key, form.cleaned_data["token"])
    if result.repeated:
        messages.info(request, _("This rotation was already submitted; here is where it stands. The new key is not shown again."))
        return redirect("automation:rotation_detail", pk=result.rotation.pk)
    rotation = result.rotation
    status = 200 if rotation.status in (Rotation.Status.DONE, Rotation.Status.CREATED) else 400
    if rotation.status in (Rotation.Status.CREATE_UNKNOWN, Rotation.Status.DELETE_UNKNOWN):
        status = 503
    context = {"rotation": rotation, "secret": result.secret}
    return _render_no_store(request, "automation/rotation.html", context, status=status)


@owner_required
@require_http_methods(["GET", "HEAD"])
def rotation_detail(request, pk):
    rotation = get_object_or_404(Rotation, pk=pk)
    return render(request, "automation/rotation.html", {"rotation": rotation, "secret": ""})


@owner_required
@require_POST
def rotation_finish(request, pk):
    """Delete the old key of an open rotation, after checking whether it is still there."""
    rotation = get_object_or_404(Rotation, pk=pk)
    try:
        rotations.finish(rotation, request.user)
    except Unavailable as error:
        messages.error(request, _("derouter could not be asked: %(message)s Nothing was changed; try again.") % {"message": error.message})
        return redirect("automation:rotation_detail", pk=pk)
    if rotation.status == Rotation.Status.DONE:
        messages.success(request, _("The rotation is finished: the old key is gone."))
    return redirect("automation:rotation_detail", pk=pk)
