"""Identity rules: one canonical spelling per identity, and the key that makes each unique.

The same phone number arrives as "138 0013 8000" from a till, "+86 138-0013-8000" from the
app and "8613800138000" from a payment partner; all of them must find the same member, so
phone numbers are kept in E.164 ("+8613800138000"). WeChat ids and app accounts are opaque,
case-sensitive tokens: only surrounding whitespace is dropped.
"""

from __future__ import annotations

import re

from member_svc.domain import Identity, IdentityKind

MAX_VALUE_LENGTH = 128

_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII without spaces


class IdentityError(ValueError):
    """An identity value that cannot be one; the message never repeats the value (PII)."""


def normalize_value(kind: IdentityKind, value: str) -> str:
    text = value.strip()
    if not text:
        raise IdentityError("is required")
    if kind is IdentityKind.PHONE:
        return _normalize_phone(text)
    if len(text) > MAX_VALUE_LENGTH or not _TOKEN.match(text):
        raise IdentityError(
            f"must be at most {MAX_VALUE_LENGTH} printable ASCII characters without spaces"
        )
    return text


def _normalize_phone(text: str) -> str:
    number = _PHONE_PUNCTUATION.sub("", text)
    if number.startswith("00"):
        number = "+" + number[2:]
    if _MAINLAND_MOBILE.match(number):
        number = "+86" + number
    elif number.startswith("86") and _MAINLAND_MOBILE.match(number[2:]):
        number = "+" + number
    if not _E164.match(number):
        raise IdentityError("is not a phone number (E.164, or an 11-digit mainland mobile)")
    return number


def normalize(identity: Identity) -> Identity:
    return Identity(identity.kind, normalize_value(identity.kind, identity.value))


def identity_key(identity: Identity) -> str:
    """`<kind>:<canonical value>`: the `_id` of the identity's document, unique by construction."""
    return f"{identity.kind.value}:{normalize_value(identity.kind, identity.value)}"
