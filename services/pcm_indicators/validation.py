"""Validation of one reported indicator value on its own (pure: no I/O)."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from pcm.monitoring.v1 import common_pb2, indicator_pb2
from pcm_common.catalogues import Catalogues, Indicator
from pcm_common.catalogues.models import period_end, period_start
from pcm_common.push import ItemContext
from pcm_common.validation import (
    INCONSISTENT,
    INVALID_FORMAT,
    OUT_OF_RANGE,
    REQUIRED,
    TOO_LONG,
    UNKNOWN_CODE,
    FieldError,
    check_time,
    quoted,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_EVIDENCE = 10
MAX_URL_LENGTH = 2_000
GRAINS = {
    common_pb2.GRAIN_MONTH: "MONTH",
    common_pb2.GRAIN_QUARTER: "QUARTER",
    common_pb2.GRAIN_YEAR: "YEAR",
}
"""Periods an indicator is reported for (its validity window is the catalogue's)."""


@dataclass(frozen=True)
class IndicatorRules:
    catalogues: Catalogues
    time_zone: str = "America/Lima"

    def local_date(self, seconds: int) -> dt.date:
        return dt.datetime.fromtimestamp(seconds, ZoneInfo(self.time_zone)).date()

    def __call__(self, event: indicator_pb2.IndicatorValue, item: ItemContext) -> list[FieldError]:
        errors = [
            *check_time(event, "reported_at", item.window, required=True),
            *check_time(event, "period_start", item.window.any_past(), required=True),
            *self._evidence(event),
        ]
        try:
            indicator = self.catalogues.indicator(event.indicator_code)
        except KeyError:
            errors.append(
                FieldError(
                    "indicator_code",
                    f"{quoted(event.indicator_code)} is not an indicator of the catalogue",
                    UNKNOWN_CODE if event.indicator_code else REQUIRED,
                )
            )
            return errors
        unit = indicator.unit.value
        if event.unit and event.unit != unit:
            errors.append(
                FieldError(
                    "unit", f"{quoted(event.unit)}: {indicator.code} is in {unit}", INCONSISTENT
                )
            )
        errors += self._value(event.value, indicator)
        grain = GRAINS.get(event.grain)
        if grain is None:
            errors.append(FieldError("grain", "required: MONTH, QUARTER or YEAR", REQUIRED))
        elif not errors and event.HasField("period_start"):
            day = self.local_date(event.period_start.seconds)
            if day != period_start(day, grain):
                errors.append(
                    FieldError(
                        "period_start",
                        f"{day.isoformat()} is not the first day of a {grain.lower()} "
                        "(local time, America/Lima)",
                        INCONSISTENT,
                    )
                )
        return errors

    def valid_until(self, event: indicator_pb2.IndicatorValue) -> dt.date | None:
        """The last day a stored value counts (its period's end plus the indicator's
        ``valid_months``); None for an indicator the catalogue no longer has."""
        grain = GRAINS.get(event.grain)
        try:
            indicator = self.catalogues.indicator(event.indicator_code)
        except KeyError:
            return None
        if grain is None:
            return None
        start = self.local_date(event.period_start.seconds)
        return indicator.valid_until(period_end(start, grain))

    def today(self) -> dt.date:
        return dt.datetime.now(ZoneInfo(self.time_zone)).date()

    @staticmethod
    def _value(value: float, indicator: Indicator) -> list[FieldError]:
        unit = indicator.unit.value
        if not math.isfinite(value) or not indicator.accepts(value):
            reason = (
                f"{value!r} is outside {indicator.range_text} "
                f"({unit}, the catalogue range of {indicator.code})"
            )
            return [FieldError("value", reason, OUT_OF_RANGE)]
        if unit in ("boolean", "count") and value != int(value):
            return [FieldError("value", f"{value!r}: a {unit} is a whole number", INVALID_FORMAT)]
        return []

    @staticmethod
    def _evidence(event: indicator_pb2.IndicatorValue) -> list[FieldError]:
        if not event.evidence:
            return [FieldError("evidence", "at least one document with its sha256", REQUIRED)]
        if len(event.evidence) > MAX_EVIDENCE:
            return [FieldError("evidence", f"at most {MAX_EVIDENCE} documents", TOO_LONG)]
        errors = []
        for number, piece in enumerate(event.evidence):
            where = f"evidence[{number}]"
            link = urlparse(piece.url) if len(piece.url) <= MAX_URL_LENGTH else None
            if link is None or link.scheme != "https" or not link.netloc:
                errors.append(
                    FieldError(
                        f"{where}.url", "an https link (at most 2,000 characters)", INVALID_FORMAT
                    )
                )
            if not _SHA256.match(piece.sha256):
                errors.append(
                    FieldError(f"{where}.sha256", "64 lowercase hex characters", INVALID_FORMAT)
                )
        return errors
