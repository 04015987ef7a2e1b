"""What a bar source raises: every market-data failure the pipeline tells apart."""


class BarSourceError(Exception):
    """The source cannot answer (no data, not connected, exhausted)."""


class PlaybackExhausted(BarSourceError):
    """The playback feed has no bar after its cursor: the run is a recorded skip."""
