from django.urls import path

from market import views

urlpatterns = [
    path("symbols/", views.symbol_list, name="symbol_list"),
    path("symbols/search/", views.symbol_search, name="symbol_search"),
    path("symbols/<int:symbol_id>/", views.symbol_detail, name="symbol_detail"),
    path("charts/", views.chart_list, name="chart_list"),
    path("charts/<uuid:execution_id>/<int:index>.png", views.chart_image, name="chart_image"),
]
