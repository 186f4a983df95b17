from django.urls import path

from payments import pay_views

app_name = "portal_pay"

urlpatterns = [
    path("", pay_views.buy, name="buy"),
    path("<uuid:token>/", pay_views.order_page, name="order"),
    path("<uuid:token>/return/", pay_views.order_return, name="order_return"),
    path("<uuid:token>/receipt/", pay_views.receipt, name="receipt"),
    path("<uuid:token>/confirm-test-card/", pay_views.order_confirm_double, name="order_confirm_double"),
]
