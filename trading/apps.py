from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading"

    def ready(self) -> None:
        from trading import checks  # noqa: F401  (registers the system checks)
        from trading.broker import bars

        bars.register()  # MarketDataSource.IBKR reads history through the strategy's broker connection
