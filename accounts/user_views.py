"""The users page for owners: invite, role and cap, who sees margins, disable, reset two-factor, require two-factor.

Every change is in the audit trail. The console never ends up without an
active owner: the last one cannot demote or disable themselves.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django.utils.translation import gettext_lazy as _

from accounts.forms import AcceptInvitationForm, InvitationForm, MarginsForm, TwoFactorPolicyForm, UserAccessForm
from accounts.invitations import create_invitation, get_open_invitation, make_token, send_invitation
from accounts.models import ConsoleProfile, ConsoleSettings, Invitation, Role
from accounts.roles import get_role, owner_required
from accounts.sessions import end_sessions
from accounts.two_factor import remove_second_factors
from ledger import audit
from ledger.models import AuditEvent, Outcome

User = get_user_model()


def _get_console_users():
    return (
        User.objects.filter(Q(console_profile__isnull=False) | Q(is_superuser=True))
        .select_related("console_profile")
        .order_by("username")
    )


def _is_last_owner(user):
    other_owners = (
        User.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(console_profile__role=Role.OWNER))
        .exclude(pk=user.pk)
    )
    return get_role(user) == Role.OWNER and not other_owners.exists()


def _lock_owner_changes():
    """Inside a transaction: take the one console settings row, so changes to owners run one at a time.

    Two owners demoting or disabling each other at once would otherwise each
    see the other still active and leave the console with no owner.
    """
    ConsoleSettings.objects.select_for_update().get(pk=ConsoleSettings.load().pk)


def _get_two_factor_user_ids():
    return set(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True)) | set(
        StaticDevice.objects.filter(confirmed=True).values_list("user_id", flat=True)
    )


def _get_console_user_or_404(user_id):
    user = get_object_or_404(User.objects.select_related("console_profile"), pk=user_id)
    if not user.is_superuser and not ConsoleProfile.objects.filter(user=user).exists():
        raise Http404(_("No such console user."))
    return user


def _get_open_invitations():
    since = timezone.now() - timedelta(seconds=settings.INVITATION_MAX_AGE)
    return Invitation.objects.filter(accepted_at__isnull=True, created_at__gte=since)


def _get_stored_role(user):
    """The user's role whether or not they are active (get_role says None for a disabled user)."""
    return Role.OWNER if user.is_superuser else user.console_profile.role


def _render_users(request, invitation_form=None, status=200):
    with_two_factor = _get_two_factor_user_ids()
    rows = []
    for user in _get_console_users():
        role = _get_stored_role(user)
        rows.append(
            {
                "user": user,
                "role": Role(role).label,
                "cap": None if role == Role.OWNER else user.console_profile.effective_topup_cap,
                "is_owner": role == Role.OWNER,
                "has_two_factor": user.pk in with_two_factor,
            }
        )
    context = {
        "rows": rows,
        "invitations": _get_open_invitations(),
        "invitation_form": invitation_form or InvitationForm(),
        "policy_form": TwoFactorPolicyForm(initial={"require_two_factor": ConsoleSettings.load().require_two_factor}),
    }
    return render(request, "accounts/users.html", context, status=status)


def _render_user(request, user, access_form=None, status=200):
    role = _get_stored_role(user)
    initial = {"role": role}
    if not user.is_superuser:
        initial["daily_topup_cap"] = user.console_profile.daily_topup_cap
    context = {
        "subject": user,
        "role_label": Role(role).label,
        "is_owner": role == Role.OWNER,
        "access_form": access_form or UserAccessForm(initial=initial),
        "has_two_factor": user.pk in _get_two_factor_user_ids(),
        "is_last_owner": _is_last_owner(user),
        "events": AuditEvent.objects.filter(subject_name=user.get_username())[:20],
    }
    return render(request, "accounts/user_detail.html", context, status=status)


@owner_required
@require_http_methods(["GET", "HEAD"])
def user_list(request):
    """Every console user with role, cap, status and two-factor; the invite form; the two-factor policy."""
    return _render_users(request)


@owner_required
@require_http_methods(["GET", "HEAD"])
def user_detail(request, user_id):
    return _render_user(request, _get_console_user_or_404(user_id))


@owner_required
@require_POST
def user_invite(request):
    """Make a one-time link for a new user, show it to the owner and email it."""
    form = InvitationForm(request.POST)
    if not form.is_valid():
        return _render_users(request, invitation_form=form, status=400)
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    cap = form.cleaned_data["daily_topup_cap"] if role == Role.STAFF else None
    invitation = create_invitation(email, role, cap, request.user)
    link = request.build_absolute_uri(reverse("accept_invitation", args=[make_token(invitation)]))
    emailed = send_invitation(invitation, link, request.user)
    changes = {"role": ("", role), "daily_topup_cap": (None, cap)}
    audit.record(request.user, AuditEvent.Action.USER_INVITE, Outcome.OK, subject_name=email, changes=changes)
    response = render(request, "accounts/invitation_sent.html", {"invitation": invitation, "link": link, "emailed": emailed})
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


@owner_required
@require_POST
def invitation_withdraw(request, invitation_id):
    """Withdraw an open invitation: its link stops working."""
    invitation = get_object_or_404(Invitation, pk=invitation_id, accepted_at__isnull=True)
    invitation.delete()
    audit.record(request.user, AuditEvent.Action.USER_INVITE_WITHDRAW, Outcome.OK, subject_name=invitation.email)
    messages.success(request, _("The invitation for %(email)s is withdrawn; its link no longer works.") % {"email": invitation.email})
    return redirect("console:users")


@owner_required
@require_POST
def user_access(request, user_id):
    """Set a user's role and daily top-up cap."""
    user = _get_console_user_or_404(user_id)
    form = UserAccessForm(request.POST)
    if not form.is_valid():
        return _render_user(request, user, access_form=form, status=400)
    if user.is_superuser:
        form.add_error(None, _("A superuser is always an owner; change that in the Django admin."))
        return _render_user(request, user, access_form=form, status=400)
    role = form.cleaned_data["role"]
    cap = form.cleaned_data["daily_topup_cap"] if role == Role.STAFF else None
    with transaction.atomic():
        _lock_owner_changes()
        profile = ConsoleProfile.objects.select_for_update().get(user=user)
        if role != Role.OWNER and _is_last_owner(user):
            form.add_error("role", _("This is the last active owner: make someone else an owner first."))
            return _render_user(request, user, access_form=form, status=400)
        changes = {
            name: (before, after)
            for name, before, after in (("role", profile.role, role), ("daily_topup_cap", profile.daily_topup_cap, cap))
            if before != after
        }
        profile.role, profile.daily_topup_cap = role, cap
        profile.save(update_fields=["role", "daily_topup_cap"])
    if changes:
        audit.record(
            request.user, AuditEvent.Action.USER_ACCESS, Outcome.OK, subject_name=user.get_username(), changes=changes
        )
        messages.success(request, _("Saved %(username)s's role and cap.") % {"username": user.get_username()})
    else:
        messages.info(request, _("Nothing changed."))
    return redirect("console:user_detail", user_id=user.pk)


@owner_required
@require_POST
def user_margins(request, user_id):
    """Let a staff member see real costs and margins in analytics, or stop them (owners always see them)."""
    user = _get_console_user_or_404(user_id)
    form = MarginsForm(request.POST)
    form.is_valid()
    allowed = form.cleaned_data.get("can_see_margins", False)
    name = user.get_username()
    if _get_stored_role(user) == Role.OWNER:
        messages.error(request, _("%(name)s is an owner: owners always see margins.") % {"name": name})
        return redirect("console:users")
    with transaction.atomic():
        profile = ConsoleProfile.objects.select_for_update().get(user=user)
        before = profile.can_see_margins
        profile.can_see_margins = allowed
        profile.save(update_fields=["can_see_margins"])
    if before == allowed:
        if allowed:
            messages.info(request, _("Nothing changed: %(name)s already sees margins.") % {"name": name})
        else:
            messages.info(request, _("Nothing changed: %(name)s already does not see margins.") % {"name": name})
        return redirect("console:users")
    audit.record(
        request.user,
        AuditEvent.Action.USER_MARGINS,
        Outcome.OK,
        subject_name=name,
        changes={"can_see_margins": (before, allowed)},
    )
    if allowed:
        messages.success(request, _("%(name)s now sees real costs and margins in analytics.") % {"name": name})
    else:
        messages.success(request, _("%(name)s no longer sees real costs or margins; billed amounts, requests and tokens stay.") % {"name": name})
    return redirect("console:users")


@owner_required
@require_POST
def user_active(request, user_id):
    """Disable a user (their open sessions end on their next request) or enable them again."""
    user = _get_console_user_or_404(user_id)
    enable = request.POST.get("active") == "1"
    with transaction.atomic():
        _lock_owner_changes()
        if not enable and _is_last_owner(user):
            messages.error(request, _("This is the last active owner: they cannot be disabled."))
            return redirect("console:user_detail", user_id=user.pk)
        if user.is_active == enable:
            return redirect("console:user_detail", user_id=user.pk)
        user.is_active = enable
        user.save(update_fields=["is_active"])
        if not enable:
            end_sessions(user)
    action = AuditEvent.Action.USER_ENABLE if enable else AuditEvent.Action.USER_DISABLE
    audit.record(request.user, action, Outcome.OK, subject_name=user.get_username(), changes={"active": (not enable, enable)})
    if enable:
        messages.success(request, _("%(username)s is enabled.") % {"username": user.get_username()})
    else:
        messages.success(request, _("%(username)s is disabled; their sessions have ended.") % {"username": user.get_username()})
    return redirect("console:user_detail", user_id=user.pk)


@owner_required
@require_POST
def user_reset_two_factor(request, user_id):
    """Remove a user's authenticator and recovery codes (a lost phone); they set it up again at next sign-in."""
    user = _get_console_user_or_404(user_id)
    remove_second_factors(user)
    audit.record(request.user, AuditEvent.Action.RESET_2FA, Outcome.OK, subject_name=user.get_username())
    messages.success(request, _("Two-factor sign-in of %(username)s is reset; their sessions have ended.") % {"username": user.get_username()})
    if user == request.user:
        return redirect("login")
    return redirect("console:user_detail", user_id=user.pk)


@owner_required
@require_POST
def two_factor_policy(request):
    """Require (or stop requiring) two-factor sign-in for every console user."""
    form = TwoFactorPolicyForm(request.POST)
    form.is_valid()
    required = form.cleaned_data.get("require_two_factor", False)
    with transaction.atomic():
        policy = ConsoleSettings.objects.select_for_update().get(pk=ConsoleSettings.load().pk)
        before = policy.require_two_factor
        policy.require_two_factor = required
        policy.save(update_fields=["require_two_factor"])
    if before != required:
        changes = {"require_two_factor": (before, required)}
        audit.record(request.user, AuditEvent.Action.REQUIRE_2FA, Outcome.OK, changes=changes)
    messages.success(
        request,
        _("Two-factor sign-in is now required for everyone.") if required else _("Two-factor sign-in is now optional."),
    )
    return redirect("console:users")


@never_cache
@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def accept_invitation(request, token):
    """The invitee chooses a username and password; the link then stops working."""
    invitation = get_open_invitation(token)
    if invitation is None:
        return render(request, "accounts/invitation_invalid.html", status=404)
    if request.method != "POST":
        return render(request, "accounts/invitation_accept.html", {"form": AcceptInvitationForm(), "invitation": invitation})
    form = AcceptInvitationForm(request.POST)
    if not form.is_valid():
        return render(request, "accounts/invitation_accept.html", {"form": form, "invitation": invitation}, status=400)
    with transaction.atomic():
        invitation = get_open_invitation(token, for_update=True)
        if invitation is None:
            return render(request, "accounts/invitation_invalid.html", status=404)
        user = form.save(commit=False)
        user.email = invitation.email
        user.save()
        ConsoleProfile.objects.create(user=user, role=invitation.role, daily_topup_cap=invitation.daily_topup_cap)
        invitation.accepted_at, invitation.accepted_user = timezone.now(), user
        invitation.save(update_fields=["accepted_at", "accepted_user"])
    changes = {"role": ("", invitation.role), "email": ("", invitation.email)}
    audit.record(user, AuditEvent.Action.USER_JOIN, Outcome.OK, subject_name=user.get_username(), changes=changes)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, _("Welcome. Set up two-factor sign-in to protect your account."))
    return redirect("console:two_factor")
