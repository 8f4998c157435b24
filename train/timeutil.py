"""Timestamps as the volume stores them: ISO 8601 in UTC, milliseconds, with a `Z`.

Run files and model metadata are read by other processes (the service, the job, inference), so
every timestamp the train service writes or reads goes through these two functions.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """Now, e.g. `2026-11-22T14:32:05.123Z`."""
    return to_iso(datetime.now(UTC))


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """An aware datetime from an ISO 8601 timestamp (`Z` or an offset); ValueError if it is not
    one (TypeError/AttributeError are turned into ValueError too: a field may hold anything)."""
    if not isinstance(text, str):
        raise ValueError(f"not a timestamp: {text!r}")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_since(text: str | None) -> float | None:
    """Seconds from the timestamp `text` until now; None when there is no valid timestamp."""
    try:
        return (datetime.now(UTC) - parse_iso(text)).total_seconds()
    except ValueError:
        return None
