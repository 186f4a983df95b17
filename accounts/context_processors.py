from accounts.models import Role
from accounts.roles import get_role


def console_role(request):
    """Expose the signed-in user's console role (owner/staff) to templates."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    role = get_role(user)
    return {
        "console_role": role,
        "console_role_label": Role(role).label if role else "",
        "is_owner": role == Role.OWNER,
    }
