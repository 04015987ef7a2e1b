from django.urls import path

from portfolio import views

urlpatterns = [
    path("portfolio/", views.portfolio, name="portfolio"),
    path("portfolio/refresh/", views.portfolio_refresh, name="portfolio_refresh"),
    path("portfolio/reconcile/", views.portfolio_reconcile, name="portfolio_reconcile"),
    path(
        "portfolio/reconciliations/<int:reconciliation_id>/accept/",
        views.portfolio_drift_accept,
        name="portfolio_drift_accept",
    ),
    path("orders/new/", views.order_new, name="order_new"),
]
