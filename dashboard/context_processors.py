def csp_nonce(request):
    """Expose the request's CSP nonce as ``csp_nonce``, the name django-htmx's tags read."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
