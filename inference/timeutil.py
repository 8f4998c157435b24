"""Timestamps in the API: ISO 8601 in UTC with milliseconds and a `Z`, one way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(seconds: float) -> str:
    """Seconds since the epoch as `2026-01-31T12:00:00.123Z`."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 timestamp (`Z` or an offset; none means UTC) as an aware datetime.

    Raises ValueError for anything else.
    """
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
