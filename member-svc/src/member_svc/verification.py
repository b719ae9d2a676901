"""One-time codes proving the caller owns an identity (sent by the SMS / WeChat partner).

One document per identity in `verification_codes`, `_id` = the identity key
("phone:+8613800138000"): a new request replaces the previous code. The document keeps a
salted SHA-256 of the 6-digit code (never the code), a `nonce` naming this generation of the
code, the number of tries made and the expiry (10 minutes; a TTL index on `expire_time`
lets the server delete dead codes).

Every check first takes a try with one conditional update (`attempts < 5` -> `$inc`), then
compares: however many checks run at once, at most five comparisons are ever made against
one code. A wrong code answers VERIFICATION_FAILED; after five wrong codes the code is locked
(RATE_LIMITED) until a new one is requested. A new code can be requested once a minute per
identity. A code used by a bind or a merge is deleted (`nonce` conditioned: used once).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import grpc
from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from member_svc.domain import Identity
from member_svc.identities import identity_key
from member_svc.settings import MemberSettings
from retail.common.v1 import common_pb2
from retail_kit.errors import FieldViolation, ServiceError
from retail_kit.mongo import Document, IndexDeclaration

VERIFICATION_CODES = "verification_codes"
CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
RESEND_INTERVAL = timedelta(seconds=60)
MAX_ATTEMPTS = 5
_CODE_FIELD = "verification_code"


@dataclass(frozen=True, slots=True)
class TtlIndexDeclaration(IndexDeclaration):
    """An index the server uses to delete documents once the indexed time has passed."""

    expire_after_seconds: int = 0

    def model(self) -> IndexModel:
        return IndexModel(
            list(self.keys), name=self.name, expireAfterSeconds=self.expire_after_seconds
        )


INDEXES: tuple[IndexDeclaration, ...] = (
    TtlIndexDeclaration(VERIFICATION_CODES, (("expire_time", 1),), "expire_ttl"),
)


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    expire_time: datetime


@dataclass(frozen=True, slots=True)
class CodeCheck:
    """A code that matched: `consume` it once the change it proves is made."""

    key: str
    nonce: str


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def rate_limited(message: str, retry_after: timedelta) -> ServiceError:
    seconds = max(1, math.ceil(retry_after.total_seconds()))
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        common_pb2.ERROR_REASON_RATE_LIMITED,
        message,
        metadata={"retry_after_seconds": str(seconds)},
    )


def verification_failed(
    description: str, field: str = _CODE_FIELD, metadata: dict[str, str] | None = None
) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_VERIFICATION_FAILED,
        f"verification failed: {description}",
        violations=[FieldViolation(field, description)],
        metadata=metadata,
    )


def code_expired(field: str = _CODE_FIELD) -> ServiceError:
    description = "the code has expired; request a new one"
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT,
        common_pb2.ERROR_REASON_EXPIRED,
        f"verification failed: {description}",
        violations=[FieldViolation(field, description)],
    )


class VerificationCodes:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._codes = database[VERIFICATION_CODES]
        self._settings = settings
        self._clock = clock

    async def request(self, identity: Identity, now: datetime) -> IssuedCode:
        """A fresh code for `identity`, replacing any earlier one; at most one a minute."""
        key = identity_key(identity)
        current = await self._codes.find_one({"_id": key})
        if current is not None:
            wait = current["create_time"] + RESEND_INTERVAL - now
            if wait > timedelta(0):
                raise rate_limited("a code was sent less than a minute ago", wait)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        salt = secrets.token_hex(8)
        document: Document = {
            "_id": key,
            "nonce": secrets.token_hex(8),
            "salt": salt,
            "code_hash": _hash(salt, code),
            "attempts": 0,
            "create_time": now,
            "expire_time": now + CODE_LIFETIME,
        }
        if current is None:
            try:
                await self._codes.insert_one(document)
            except DuplicateKeyError:
                raise rate_limited("a code was just sent", RESEND_INTERVAL) from None
        else:
            replaced = await self._codes.replace_one(
                {"_id": key, "nonce": current["nonce"]}, document
            )
            if replaced.matched_count == 0:
                raise rate_limited("a code was just sent", RESEND_INTERVAL)
        return IssuedCode(code, document["expire_time"])

    async def check(
        self, identity: Identity, code: str, now: datetime, *, field: str = _CODE_FIELD
    ) -> CodeCheck:
        """Takes one of the code's tries and compares; raises VERIFICATION_FAILED (wrong or
        missing code), EXPIRED or RATE_LIMITED (locked). A match is not used up: the caller
        `consume`s it once its change is made, so a bind refused because the identity belongs
        to another member leaves the code valid for the merge that follows."""
        code = code.strip()
        if not code:
            raise verification_failed("is required", field)
        key = identity_key(identity)
        doc = await self._codes.find_one({"_id": key})
        if doc is None:
            raise verification_failed("no code was requested for this identity", field)
        if doc["expire_time"] <= now:
            raise code_expired(field)
        if doc["attempts"] >= MAX_ATTEMPTS:
            raise self._locked(doc, now)
        took = await self._codes.update_one(
            {"_id": key, "nonce": doc["nonce"], "attempts": {"$lt": MAX_ATTEMPTS}},
            {"$inc": {"attempts": 1}},
        )
        if took.matched_count == 0:
            # Replaced by a new request, or the last try went to a concurrent check.
            fresh = await self._codes.find_one({"_id": key})
            if fresh is not None and fresh["nonce"] == doc["nonce"]:
                raise self._locked(fresh, now)
            raise verification_failed("the code was replaced by a newer one", field)
        if not hmac.compare_digest(doc["code_hash"], _hash(doc["salt"], code)):
            left = MAX_ATTEMPTS - doc["attempts"] - 1
            raise verification_failed(
                "does not match the code sent", field, {"attempts_left": str(max(0, left))}
            )
        # A matching code does not count as a wrong try.
        await self._codes.update_one(
            {"_id": key, "nonce": doc["nonce"]}, {"$inc": {"attempts": -1}}
        )
        return CodeCheck(key, doc["nonce"])

    async def consume(self, check: CodeCheck) -> bool:
        """Deletes the matched code; False when another call used it first."""
        deleted = await self._codes.delete_one({"_id": check.key, "nonce": check.nonce})
        return deleted.deleted_count == 1

    def _locked(self, doc: Document, now: datetime) -> ServiceError:
        wait = doc["create_time"] + RESEND_INTERVAL - now
        return rate_limited(
            "too many wrong codes: request a new code", max(wait, timedelta(seconds=1))
        )
