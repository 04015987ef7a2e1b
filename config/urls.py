from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from brokers.api import SymbolViewSet
from core.api import api_not_found
from portfolio.api import ManualOrderViewSet, PortfolioViewSet
from signals_app.api import PromptTemplateViewSet, SignalViewSet
from trading.api import AvailableIndicatorsView, ExecutionViewSet, IndicatorConfigViewSet, StrategyViewSet

# No `.json` suffix routes: the API speaks JSON only, and a suffix on an action (search.json) was a 500.
router = DefaultRouter()
router.include_format_suffixes = False
router.register("symbols", SymbolViewSet, basename="api-symbol")
router.register("indicators/configurations", IndicatorConfigViewSet, basename="api-indicator-config")
router.register("prompts", PromptTemplateViewSet, basename="api-prompt")
router.register("strategies", StrategyViewSet, basename="api-strategy")
router.register("executions", ExecutionViewSet, basename="api-execution")
router.register("signals", SignalViewSet, basename="api-signal")
router.register("orders", ManualOrderViewSet, basename="api-order")
router.register("portfolio", PortfolioViewSet, basename="api-portfolio")

api_patterns: list[URLPattern | URLResolver] = [
    path("indicators/available/", AvailableIndicatorsView.as_view(), name="api-indicators-available"),
    path("lineage/", include("trading.lineage_api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include(router.urls)),
    re_path(r"^.*/$", api_not_found),  # last: an API address nothing answers is a JSON 404
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include(api_patterns)),
    path("", include("trading.urls")),
    path("", include("orders.urls")),
    path("", include("portfolio.urls")),
    path("", include("notifications.urls")),
    path("replays/", include("replays.urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
