from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from accounts import language_views, user_views
from accounts import views as account_views
from dashboard.views import home
from payments import portal_views as payment_portal_views
from payments import webhook_views as payment_webhooks

urlpatterns = [
    path("", home.index, name="index"),
    path("login/", account_views.login_view, name="login"),
    path("login/code/", account_views.login_code_view, name="login_code"),
    path("logout/", account_views.logout_view, name="logout"),
    path("language/", language_views.set_language, name="language"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript_catalog"),
    path("invite/<str:token>/", user_views.accept_invitation, name="accept_invitation"),
    path("admin/", admin.site.urls),
    path("dashboard/automation/", include("automation.urls")),
    path("dashboard/money-in/", include("payments.urls")),
    path("dashboard/", include("dashboard.console_urls")),
    path("dashboard/", include("analytics.urls")),
    path("portal/requests/", include("automation.portal_urls")),
    path("portal/redeem/", include("payments.portal_urls")),
    path("portal/pay/", include("payments.pay_urls")),
    path("portal/start/", payment_portal_views.start, name="portal_start"),
    path("payments/stripe/webhook/", payment_webhooks.stripe_webhook, name="stripe_webhook"),
    path("portal/", include("portal.urls")),
    path("", include("branding.urls")),
    path("", include("ops.urls")),
]

# A database outage answers 503 with Retry-After; anything else, the plain 500 page.
handler500 = "ops.views.server_error"
