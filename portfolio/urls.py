from django.urls import path

from portfolio import views

urlpatterns = [
    path("portfolio/", views.portfolio, name="portfolio"),
    path("portfolio/refresh/", views.portfolio_refresh, name="portfolio_refresh"),
    path("orders/new/", views.order_new, name="order_new"),
]
