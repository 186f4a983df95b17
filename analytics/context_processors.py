from analytics.permissions import can_see_margins


def margins(request):
    """``show_margins``: whether the signed-in console user may see real costs, multipliers and margins."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"show_margins": False}
    return {"show_margins": can_see_margins(user)}
