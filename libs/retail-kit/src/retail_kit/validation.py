"""Request checks every servicer shares; each failure names the field."""

from __future__ import annotations

import re
from collections.abc import Iterable

from retail_kit.errors import FieldViolation, invalid_argument

MAX_BATCH_SIZE = 500
MAX_ID_LENGTH = 128
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-.:]+$")


def id_violation(field: str, value: str) -> FieldViolation | None:
    if not value:
        return FieldViolation(field, "is required")
    if len(value) > MAX_ID_LENGTH or not _ID_PATTERN.match(value):
        return FieldViolation(field, f"{value[:40]!r} is not a valid id")
    return None


def require_id(field: str, value: str) -> str:
    if violation := id_violation(field, value):
        raise invalid_argument(violation)
    return value


def batch_ids(field: str, values: Iterable[str], maximum: int = MAX_BATCH_SIZE) -> list[str]:
    """Distinct ids in first-seen order; every bad id is reported, not just the first."""
    ids = list(dict.fromkeys(values))
    if len(ids) > maximum:
        raise invalid_argument(FieldViolation(field, f"at most {maximum} ids, got {len(ids)}"))
    violations = [v for i, value in enumerate(ids) if (v := id_violation(f"{field}[{i}]", value))]
    if violations:
        raise invalid_argument(*violations)
    return ids
