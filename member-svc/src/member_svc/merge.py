"""Merging two members: crash-safe, idempotent, step by step from a merge record.

Owned by the identity work of issue 7 (member-svc/DESIGN.md); a stub until it lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.settings import MemberSettings
from retail_kit.mongo import Document, IndexDeclaration

INDEXES: tuple[IndexDeclaration, ...] = ()


class MergeProcess:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock
