from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("reveal/", views.reveal, name="reveal"),
    path("logs/", views.logs, name="logs"),
    path("logs/export.csv", views.logs_csv, name="logs_csv"),
    path("timezone/", views.set_time_zone, name="timezone"),
]
