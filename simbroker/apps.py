from django.apps import AppConfig


class SimbrokerConfig(AppConfig):
    name = "simbroker"
    verbose_name = "Simulated broker"
