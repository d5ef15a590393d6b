"""JSOC time text: TAI times as JSOC writes them (``2012.03.06_14:24:00_TAI``) or in ISO form.

SHARP's and AIA's T_REC are TAI (TAI = UTC + 34 to 37 s over the SDO mission); these functions keep
times naive and never shift them between scales.
"""

from __future__ import annotations

import datetime
import re

_JSOC_TIME = re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})(?:_(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(?:_TAI)?$")


def parse_tai(value: str | datetime.datetime) -> datetime.datetime:
    """A naive `datetime` in TAI from JSOC or ISO text.

    Accepts ``2012.03.06_14:24:00_TAI`` (JSOC, with optional fractional seconds, minutes-only or
    date-only forms), ISO 8601 (``2012-03-06T14:24``, ``2012-03-06``), or a naive datetime.

    Raises:
      ValueError: unparseable text, or a time with a UTC offset (SHARP times are TAI: give them
        without a zone).
    """
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        text = str(value).strip()
        match = _JSOC_TIME.match(text)
        if match:
            year, month, day, hour, minute, second, fraction = match.groups()
            parsed = datetime.datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                int((fraction or "0")[:6].ljust(6, "0")),
            )
        else:
            try:
                parsed = datetime.datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"cannot read time {text!r}: use ISO (2012-03-06T14:24:00) or JSOC (2012.03.06_14:24:00_TAI) form"
                ) from None
    if parsed.tzinfo is not None:
        raise ValueError(f"time {value!r} has a UTC offset; give TAI times without a zone")
    return parsed


def format_t_rec(t_rec: datetime.datetime) -> str:
    """JSOC's T_REC text, e.g. ``2012.03.06_14:24:00_TAI``."""
    return t_rec.strftime("%Y.%m.%d_%H:%M:%S_TAI")
