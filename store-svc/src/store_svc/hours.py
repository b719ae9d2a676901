"""Store-local clock times as the contract and the documents spell them: "HH:MM", 24-hour."""

from __future__ import annotations

import re
from datetime import time

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def format_hhmm(value: time) -> str:
    """Minutes precision: seconds are not part of opening hours."""
    return f"{value.hour:02d}:{value.minute:02d}"


def parse_hhmm(text: str) -> time:
    """The inverse of `format_hhmm`; anything else ("9:00", "24:00", "09:00:00") is refused."""
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a HH:MM time")
    return time(int(match.group(1)), int(match.group(2)))
