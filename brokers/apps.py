from django.apps import AppConfig


class BrokersConfig(AppConfig):
    name = "brokers"
    verbose_name = "Brokers"

    def ready(self) -> None:
        from brokers import bars

        bars.register()  # MarketDataSource.IBKR reads history through the strategy's broker connection
