"""The tag catalogue and member tags (who, where, when; removals audited).

Owned by the identity work of issue 7 (member-svc/DESIGN.md); a stub until it lands.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from member_svc.settings import MemberSettings
from retail_kit.mongo import Document, IndexDeclaration

INDEXES: tuple[IndexDeclaration, ...] = ()


class TagCatalogue:
    def __init__(
        self,
        database: AsyncDatabase[Document],
        settings: MemberSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = database
        self._settings = settings
        self._clock = clock
