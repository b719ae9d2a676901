"""Persisted queries: Apollo's automatic persisted queries (APQ) and an allow-list mode.

The protocol is Apollo's, so Apollo Client's persisted-query link, Apollo Kotlin/iOS and
urql's persisted exchange work unchanged: a request names its document by
`extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex sha256 of the text>"}`.

- `apq` (default): a hash alone runs the document stored under it, or is answered with the
  error Apollo clients wait for (message `PersistedQueryNotFound`, code
  `PERSISTED_QUERY_NOT_FOUND`), on which they send the hash with the text; the text is
  checked against the hash, run, and stored once it has parsed and validated. Free-form
  requests (no hash) still work. The store is an LRU in the process, bounded by count and
  by characters: a miss costs the client one round trip, so nothing is lost when a replica
  restarts or when replicas each learn the documents by themselves (no shared store needed;
  a flood of junk documents evicts good ones, which then cost that one round trip again).
- `allowlist`: only documents in a manifest run (the mini-program's release build): by hash,
  or free-form text whose hash is listed. Anything else is refused before parsing:
  `PERSISTED_QUERY_NOT_IN_LIST` (unknown hash) or `QUERY_NOT_IN_SAFELIST` (unknown text).
  The manifest is Apollo's persisted-query manifest (`{"format":
  "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "body", ...}]}`) or a
  plain JSON object of hash -> document; every id must be the sha256 of its body (checked at
  start-up, so a wrong manifest stops the gateway rather than refusing every client).
- `off`: a request with a hash is answered `PERSISTED_QUERY_NOT_SUPPORTED` (Apollo clients
  then stop sending hashes).

Hashes are compared in lower-case hex, as Apollo clients send them.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import GraphQLError

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_SUPPORTED = "PERSISTED_QUERY_NOT_SUPPORTED"
PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
QUERY_NOT_IN_SAFELIST = "QUERY_NOT_IN_SAFELIST"
BAD_USER_INPUT = "BAD_USER_INPUT"

APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
_HASH = re.compile(r"[0-9a-f]{64}")


class Mode(enum.StrEnum):
    APQ = "apq"
    ALLOWLIST = "allowlist"
    OFF = "off"


class ManifestError(ValueError):
    """The allow-list manifest cannot be used; raised at start-up."""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _error(code: str, message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


@dataclass(frozen=True, slots=True)
class Lookup:
    """What to run for one operation: `query` (None: the operation is answered by `error`),
    and the hash to store the text under once it has been accepted."""

    query: str | None
    error: GraphQLError | None = None
    store_as: str | None = None
    persisted: bool = False
    """The client named the document by its hash (so a GET of it may be cached by a CDN)."""


class DocumentStore:
    """hash -> document, least recently used evicted first; bounded in entries and chars."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, digest: str) -> str | None:
        document = self._documents.get(digest)
        if document is not None:
            self._documents.move_to_end(digest)
        return document

    def put(self, digest: str, document: str) -> None:
        if digest in self._documents or len(document) > self.max_chars or self.max_entries < 1:
            return
        self._documents[digest] = document
        self._chars += len(document)
        while len(self._documents) > self.max_entries or self._chars > self.max_chars:
            _, evicted = self._documents.popitem(last=False)
            self._chars -= len(evicted)


def load_manifest(path: Path) -> dict[str, str]:
    """hash -> document from an Apollo manifest or a plain JSON object; checks every hash."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ManifestError(f"persisted query manifest {str(path)!r}: {error}") from None
    entries: list[tuple[object, object]]
    if isinstance(raw, dict) and raw.get("format") == APOLLO_MANIFEST_FORMAT:
        if raw.get("version") != 1 or not isinstance(raw.get("operations"), list):
            raise ManifestError(f"{path}: expected version 1 with a list of operations")
        entries = [
            (op.get("id"), op.get("body")) if isinstance(op, dict) else (None, None)
            for op in raw["operations"]
        ]
    elif isinstance(raw, dict):
        entries = list(raw.items())
    else:
        raise ManifestError(f"{path}: expected a JSON object")
    documents: dict[str, str] = {}
    for digest, body in entries:
        if not isinstance(digest, str) or not isinstance(body, str):
            raise ManifestError(f"{path}: every operation needs a string id and body")
        if sha256_hex(body) != digest.lower():
            raise ManifestError(f"{path}: id {digest[:16]}... is not the sha256 of its body")
        documents[digest.lower()] = body
    return documents


class PersistedQueries:
    """Turns a request's (query, extensions) into the document to run, per the mode."""

    def __init__(
        self,
        mode: Mode,
        *,
        manifest: Mapping[str, str] | None = None,
        max_entries: int = 5000,
        max_chars: int = 16_000_000,
    ) -> None:
        self.mode = mode
        self.manifest = dict(manifest or {})
        self.store = DocumentStore(max_entries, max_chars)

    @classmethod
    def from_settings(cls, mode: str, manifest_path: str, max_entries: int) -> PersistedQueries:
        chosen = Mode(mode)
        manifest = load_manifest(Path(manifest_path)) if chosen is Mode.ALLOWLIST else None
        return cls(chosen, manifest=manifest, max_entries=max_entries)

    def lookup(self, query: str | None, extensions: Mapping[str, Any] | None) -> Lookup:
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            return self._free_form(query)
        if self.mode is Mode.OFF:
            return Lookup(None, _error(PERSISTED_QUERY_NOT_SUPPORTED, "PersistedQueryNotSupported"))
        if not isinstance(persisted, Mapping) or persisted.get("version") != 1:
            return Lookup(
                None,
                _error(
                    PERSISTED_QUERY_NOT_SUPPORTED,
                    "unsupported persisted query version: only version 1 is supported",
                ),
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not _HASH.fullmatch(digest.lower()):
            return Lookup(
                None,
                _error(
                    BAD_USER_INPUT,
                    "persistedQuery.sha256Hash must be 64 hexadecimal digits",
                    reason="INVALID_PERSISTED_QUERY_HASH",
                ),
            )
        digest = digest.lower()
        if query is not None and sha256_hex(query) != digest:
            return Lookup(
                None,
                _error(
                    BAD_USER_INPUT,
                    "provided sha does not match query",
                    reason="PERSISTED_QUERY_HASH_MISMATCH",
                ),
            )
        if self.mode is Mode.ALLOWLIST:
            known = self.manifest.get(digest)
            if known is None:
                return Lookup(
                    None,
                    _error(
                        PERSISTED_QUERY_NOT_IN_LIST,
                        "this gateway runs only listed operations; the hash is not in its list",
                    ),
                )
            return Lookup(known, persisted=True)
        if query is not None:
            return Lookup(query, store_as=digest, persisted=True)
        stored = self.store.get(digest)
        if stored is None:
            return Lookup(None, _error(PERSISTED_QUERY_NOT_FOUND, "PersistedQueryNotFound"))
        return Lookup(stored, persisted=True)

    def _free_form(self, query: str | None) -> Lookup:
        if self.mode is not Mode.ALLOWLIST or query is None:
            return Lookup(query)
        if sha256_hex(query) in self.manifest:
            return Lookup(query)
        return Lookup(
            None,
            _error(
                QUERY_NOT_IN_SAFELIST,
                "this gateway runs only listed operations; the document is not in its list",
            ),
        )

    def remember(self, digest: str, query: str) -> None:
        """Stores an accepted document (APQ); the caller checked its hash."""
        self.store.put(digest, query)
