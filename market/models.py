from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.models import DecimalDigits
from market.indicators import validate_config_fields
from market.querysets import BarQuerySet, SymbolQuerySet

PRICE: DecimalDigits = {"max_digits": 18, "decimal_places": 6}


class MarketDataSource(models.TextChoices):
    STORED = "stored", "Stored bars"
    PLAYBACK = "playback", "Playback of stored history"
    IBKR = "ibkr", "IBKR history"


class IndicatorType(models.TextChoices):
    RSI = "RSI"
    MACD = "MACD"
    ATR = "ATR"
    SMA = "SMA"
    EMA = "EMA"
    BB = "BB", "Bollinger Bands"
    SUPERTREND = "SUPERTREND", "Supertrend"


class BarSize(models.TextChoices):
    MIN1 = "1min", "1 minute"
    MIN5 = "5min", "5 minutes"
    MIN15 = "15min", "15 minutes"
    MIN30 = "30min", "30 minutes"
    H1 = "1h", "1 hour"
    H4 = "4h", "4 hours"
    D1 = "1d", "1 day"
    W1 = "1w", "1 week"

    @classmethod
    def is_daily_or_longer(cls, value: str) -> bool:
        return value in {cls.D1, cls.W1}


class AssetType(models.TextChoices):
    STOCK = "STK", "Stock"
    ETF = "ETF", "ETF"
    INDEX = "IND", "Index"
    CRYPTO = "CRYPTO", "Crypto"
    FOREX = "CASH", "Forex"


class Symbol(models.Model):
    """An instrument. `conid` is IBKR's contract id, unique when known; offline imports have none."""

    symbol = models.CharField(max_length=32)
    name = models.CharField(max_length=200, blank=True)
    exchange = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=8, default="USD")
    asset_type = models.CharField(max_length=8, choices=AssetType.choices, default=AssetType.STOCK)
    conid = models.BigIntegerField(null=True, blank=True, unique=True)
    time_zone = models.CharField(max_length=64, default="America/New_York", help_text="the exchange's time zone")
    last_updated = models.DateTimeField(auto_now=True)

    objects = SymbolQuerySet.as_manager()

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "exchange"], name="symbol_unique_per_exchange"),
            models.CheckConstraint(condition=Q(asset_type__in=AssetType.values), name="symbol_asset_type_valid"),
            models.CheckConstraint(condition=Q(conid__isnull=True) | Q(conid__gt=0), name="symbol_conid_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} ({self.exchange})" if self.exchange else self.symbol


class Bar(models.Model):
    """One OHLCV bar. 1d and longer are keyed at 00:00 UTC of the exchange-local session date; intraday bars at
    their start instant in UTC."""

    symbol = models.ForeignKey(Symbol, on_delete=models.CASCADE, related_name="bars")
    bar_size = models.CharField(max_length=8, choices=BarSize.choices)
    timestamp = models.DateTimeField()
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(0))

    objects = BarQuerySet.as_manager()

    class Meta:
        ordering = ["symbol", "bar_size", "timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["symbol", "bar_size", "timestamp"], name="bar_unique_per_instant"),
            models.CheckConstraint(condition=Q(bar_size__in=BarSize.values), name="bar_size_valid"),
            models.CheckConstraint(condition=Q(low__gt=0), name="bar_prices_positive"),
            models.CheckConstraint(condition=Q(high__gte=F("low")), name="bar_high_not_below_low"),
            models.CheckConstraint(condition=Q(open__gte=F("low"), open__lte=F("high")), name="bar_open_within_range"),
            models.CheckConstraint(
                condition=Q(close__gte=F("low"), close__lte=F("high")), name="bar_close_within_range"
            ),
            models.CheckConstraint(condition=Q(volume__gte=0), name="bar_volume_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol.symbol} {self.bar_size} {self.timestamp:%Y-%m-%d %H:%M}"


class PlaybackCursor(models.Model):
    """Where a strategy's playback feed stands: the timestamp of the last bar it may see. One per strategy."""

    strategy = models.OneToOneField("trading.Strategy", on_delete=models.CASCADE, related_name="playback_cursor")
    bar_size = models.CharField(max_length=8, choices=BarSize.choices)
    cursor = models.DateTimeField(help_text="timestamp of the newest bar the strategy may see")
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(bar_size__in=BarSize.values), name="playback_bar_size_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} at {self.cursor:%Y-%m-%d %H:%M}"


class IndicatorConfig(models.Model):
    """A saved indicator with its parameters, shared by strategies through StrategyIndicator."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="indicator_configs")
    name = models.CharField(max_length=100)
    indicator_type = models.CharField(max_length=16, choices=IndicatorType.choices)
    parameters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["owner", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="indicator_name_unique_per_owner"),
            models.CheckConstraint(condition=Q(indicator_type__in=IndicatorType.values), name="indicator_type_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Every form (admin, pages, API serializers through full_clean) gets the registry's field errors, and the
        # stored parameters always carry the defaults filled in.
        self.parameters = validate_config_fields(self.indicator_type, self.parameters)
