from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.models import ConsoleProfile
from accounts.two_factor import has_second_factor, needs_enrolment


class ConsoleProfileInline(admin.StackedInline):
    model = ConsoleProfile
    can_delete = False
    verbose_name = "console role"


class ConsoleUserAdmin(UserAdmin):
    inlines = [ConsoleProfileInline]
    list_display = UserAdmin.list_display + ("console_role",)

    @admin.display(description=_("Console role"))
    def console_role(self, user):
        if user.is_superuser:
            return "Owner (superuser)"
        profile = getattr(user, "console_profile", None)
        return profile.get_role_display() if profile else "—"


admin.site.unregister(User)
admin.site.register(User, ConsoleUserAdmin)


class ConsoleAdminSite(admin.AdminSite):
    """The admin behind the console's own sign-in: its throttle and its second factor."""

    def has_permission(self, request):
        user = request.user
        if not super().has_permission(request):
            return False
        return not (has_second_factor(user) and not user.is_verified()) and not needs_enrolment(user)

    def login(self, request, extra_context=None):
        if request.user.is_authenticated:
            return render(request, "403.html", {"exception": _("Your account cannot use the admin.")}, status=403)
        return redirect_to_login(request.GET.get("next") or reverse("admin:index"))


# Django's default site object is kept (every app registered on it), only its behaviour is ours.
admin.site.__class__ = ConsoleAdminSite
