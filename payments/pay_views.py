"""The portal's card payments: pick a package, pay on our page with Stripe's Payment Element, see orders and receipts."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.utils.translation import gettext_lazy

from accounts.throttle import Throttle, client_address
from branding.models import Branding
from derouter.client import DerouterError
from mirror.reads import get_active_key_by_secret
from payments import crediting, orders, stripe_api
from payments.models import Order, Package, StripeSettings
from accounts.portal_sessions import portal_login_required

SHOWN_ORDERS = 50
STRIPE_HOOKS_ORIGIN = "https://hooks.stripe.com"


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _allow_stripe_js(response):
    """stripe.js is the one script from another host, on this page only; its frames and calls go to Stripe's hosts."""
    script_origin = _origin(settings.STRIPE_JS_URL)
    frames = [script_origin] + ([STRIPE_HOOKS_ORIGIN] if script_origin == "https://js.stripe.com" else [])
    response._csp_update = {
        "script-src": [settings.STRIPE_JS_URL],
        "frame-src": frames,
        "connect-src": [_origin(settings.STRIPE_API_BASE)],
    }
    return response


def _get_throttle():
    return Throttle("portal-pay", settings.PORTAL_PAY_ATTEMPTS_LIMIT, settings.PORTAL_PAY_ATTEMPTS_WINDOW)


def _own_order(request, token):
    """The signed-in key's order, or 404 (another key's order is not found either)."""
    snapshot = get_active_key_by_secret(request.portal_key)
    if snapshot is None:
        raise Http404(gettext_lazy("No such order."))
    return get_object_or_404(Order, token=token, sub_key_id=snapshot.sub_key_id)


def _render_packages(request, snapshot, status=200, **context):
    stripe_settings = StripeSettings.load()
    context = {
        "enabled": stripe_settings.is_ready,
        "packages": Package.objects.filter(active=True) if stripe_settings.is_ready else [],
        "orders": Order.objects.filter(sub_key_id=snapshot.sub_key_id).exclude(state=Order.State.EXPIRED)[:SHOWN_ORDERS]
        if snapshot else [],
        **context,
    }
    return render(request, "payments/portal_buy.html", context, status=status)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
@portal_login_required
def buy(request):
    """The packages on offer and the key's orders; a POST starts an order and goes to its payment page."""
    snapshot = get_active_key_by_secret(request.portal_key)
    if snapshot is None:
        return _render_packages(request, None, status=503, unavailable=True)
    if request.method != "POST":
        return _render_packages(request, snapshot)
    throttle = _get_throttle()
    attempts = [throttle.hit(f"key:{snapshot.sub_key_id}"), throttle.hit(f"ip:{client_address(request)}")]
    over = [attempt for attempt in attempts if attempt.is_over_limit]
    if over:
        retry_after = max(attempt.retry_after for attempt in over)
        response = _render_packages(request, snapshot, status=429, error=gettext_lazy("Too many orders were started. Wait %(seconds)s seconds, then try again.") % {"seconds": retry_after})
        response["Retry-After"] = str(retry_after)
        return response
    package_id = request.POST.get("package", "")
    package = Package.objects.filter(pk=int(package_id), active=True).first() if package_id.isdigit() else None
    if package is None:
        return _render_packages(request, snapshot, status=400, error=gettext_lazy("Choose one of the packages below."))
    try:
        order, _ = orders.create_order(snapshot, package)
    except orders.OrderRefused as refusal:
        return _render_packages(request, snapshot, status=refusal.status, error=refusal.message)
    except crediting.KeyGone:
        return _render_packages(request, snapshot, status=409, error=gettext_lazy("Your key could not be found. Sign in again."))
    return redirect("portal_pay:order", token=order.token)


@never_cache
@require_GET
@portal_login_required
def order_page(request, token):
    """An order: the Payment Element while it waits for payment, else its state (and receipt once paid)."""
    order = _own_order(request, token)
    context = {"order": order, "stripe_js_url": settings.STRIPE_JS_URL}
    if order.state == Order.State.CREATED:
        try:
            client_secret, status = orders.get_client_secret(order)
        except (stripe_api.StripeUnavailable, stripe_api.StripeRefused):
            return render(request, "payments/portal_order.html", {**context, "stripe_down": True}, status=503)
        if status == "succeeded":
            return redirect("portal_pay:order_return", token=order.token)
        context.update(
            client_secret=client_secret,
            publishable_key=StripeSettings.load().publishable_key,
            return_url=request.build_absolute_uri(reverse("portal_pay:order_return", args=[order.token])),
            double_confirm_url=reverse("portal_pay:order_confirm_double", args=[order.token])
            if stripe_api.is_test_double() else "",
        )
        return _allow_stripe_js(render(request, "payments/portal_order.html", context))
    return render(request, "payments/portal_order.html", context)


@never_cache
@require_GET
@portal_login_required
def order_return(request, token):
    """Where Stripe sends the customer back: ask Stripe about the PaymentIntent and credit it if it succeeded."""
    order = _own_order(request, token)
    try:
        order = orders.fulfil_from_stripe(order)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRefused):
        messages.warning(request, gettext_lazy("Stripe could not be asked about your payment just now; your key is credited as soon as it confirms."))
    except orders.EventMismatch:
        messages.error(request, gettext_lazy("This payment does not match your order; nothing was credited. Contact your provider."))
    except DerouterError:
        messages.warning(request, gettext_lazy("Your payment is confirmed; your key will be credited within a few minutes."))
    if order.state == Order.State.CREDITED:
        messages.success(request, gettext_lazy("Thank you: your payment was received and your key was credited."))
    elif order.state in (Order.State.PAID, Order.State.FAILED):
        messages.info(request, gettext_lazy("Thank you: your payment was received. Your key is being credited; this page shows when it is done."))
    return redirect("portal_pay:order", token=order.token)


@require_GET
@portal_login_required
def receipt(request, token):
    """A printable receipt for a paid order."""
    order = _own_order(request, token)
    if order.receipt_number is None:
        raise Http404(gettext_lazy("This order has not been paid."))
    return render(request, "payments/receipt.html", {"order": order, "seller": Branding.load()})


@require_POST
@portal_login_required
def order_confirm_double(request, token):
    """localstripe only (tests, the demo): confirm the order's payment with the card token its stripe.js made."""
    if not stripe_api.is_test_double():
        raise Http404(gettext_lazy("Not served against Stripe."))
    order = _own_order(request, token)
    token_id = request.POST.get("card_token", "")
    if order.state != Order.State.CREATED or not token_id.startswith("tok_"):
        return JsonResponse({"error": gettext_lazy("This order cannot be paid now.")}, status=409)
    try:
        stripe_api.confirm_with_card_token(StripeSettings.load().get_secret_key(), order.payment_intent_id, token_id)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRefused) as error:
        return JsonResponse({"error": str(error)}, status=402)
    return JsonResponse({"redirect": reverse("portal_pay:order_return", args=[order.token])})
