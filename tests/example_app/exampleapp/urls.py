from __future__ import annotations

from django.urls import path

from exampleapp import views

urlpatterns = [
    path("health/", views.health),
    path("items/sync/", views.items_sync),
    path("items/async/", views.items_async),
    path("echo/sync/", views.echo_sync),
    path("echo/async/", views.echo_async),
]
