from django.urls import path

from accounts import portal_views

app_name = "portal"

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("login/", portal_views.login_view, name="login"),
    path("logout/", portal_views.logout_view, name="logout"),
    path("reveal/", portal_views.reveal, name="reveal"),
    path("logs/", portal_views.logs, name="logs"),
    path("logs/export.csv", portal_views.logs_csv, name="logs_csv"),
    path("timezone/", portal_views.set_time_zone, name="timezone"),
]
