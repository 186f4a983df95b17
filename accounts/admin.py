from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from accounts.models import ConsoleProfile


class ConsoleProfileInline(admin.StackedInline):
    model = ConsoleProfile
    can_delete = False
    verbose_name = "console role"


class ConsoleUserAdmin(UserAdmin):
    inlines = [ConsoleProfileInline]
    list_display = UserAdmin.list_display + ("console_role",)

    @admin.display(description="Console role")
    def console_role(self, user):
        if user.is_superuser:
            return "Owner (superuser)"
        profile = getattr(user, "console_profile", None)
        return profile.get_role_display() if profile else "—"


admin.site.unregister(User)
admin.site.register(User, ConsoleUserAdmin)
