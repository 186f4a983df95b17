from accounts.roles import get_role
from automation.budget_requests import pending_count


def budget_request_count(request):
    """The number of budget requests waiting, for the console nav (console users only)."""
    user = getattr(request, "user", None)
    if user is None or get_role(user) is None or not request.path.startswith("/dashboard/"):
        return {}
    return {"pending_budget_requests": pending_count()}
