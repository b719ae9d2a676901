"""The embedded database keeps every acknowledged write across a kill -9 and a clean restart.

Starts its own SecantusDB (`EmbeddedDatabase`, not the shared `mongo_uri` fixture) in a
temporary directory, writes inserts, `$inc` updates and a delete, kills the server with SIGKILL
(`EmbeddedDatabase.kill`) right after the last acknowledgement, starts a new server on the
same files and reads everything back: every acknowledged write must be there.

Two ways of writing are checked: the default write concern on the embedded default server
(started with `sync_on_commit=True`: what `make run` and the services do), and `j: true` on
a server without it. (The default write concern on a server without `sync_on_commit` lost
acknowledged updates on every kill; that is why the default syncs.) Skipped when
MONGODB_URI is set: it tests the embedded server only.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, WriteConcern

from retail_kit.embedded import EmbeddedDatabase, free_port

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")),
    reason="MONGODB_URI is set: durability is checked on the embedded server only",
)

Document = dict[str, Any]

DATABASE = "durability"
SINGLE_INSERTS = 300
BATCH_INSERTS = 200
INCREMENTS = 250
CONCURRENT_INCREMENTS = 100
DELETED = 150
BUMP = 1_000_000


@dataclass(frozen=True)
class Mode:
    sync_on_commit: bool
    write_concern: WriteConcern


MODES = {
    "default": Mode(sync_on_commit=True, write_concern=WriteConcern()),
    "j_true": Mode(sync_on_commit=False, write_concern=WriteConcern(j=True)),
}


async def start(data_dir: Path, mode: Mode) -> EmbeddedDatabase:
    database = EmbeddedDatabase(data_dir, free_port(), sync_on_commit=mode.sync_on_commit)
    return await asyncio.to_thread(database.start)


def doc_id(n: int) -> str:
    return f"d{n:05d}"


async def write_acknowledged(uri: str, generation: int, write_concern: WriteConcern) -> None:
    """Acknowledged writes of several kinds; `check_everything` knows what they leave."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    try:
        database = client.get_database(DATABASE, write_concern=write_concern)
        docs, counters = database[f"docs_{generation}"], database["counters"]
        for n in range(SINGLE_INSERTS):
            await docs.insert_one({"_id": doc_id(n), "n": n, "payload": "x" * 200})
        await docs.insert_many(
            [
                {"_id": doc_id(n), "n": n, "payload": "y" * 200}
                for n in range(SINGLE_INSERTS, SINGLE_INSERTS + BATCH_INSERTS)
            ]
        )
        counter_id = f"g{generation}"
        await counters.update_one({"_id": counter_id}, {"$set": {"value": 0}}, upsert=True)
        for _ in range(INCREMENTS):
            result = await counters.update_one({"_id": counter_id}, {"$inc": {"value": 1}})
            assert result.modified_count == 1
        increments = await asyncio.gather(
            *(
                docs.update_one({"_id": doc_id(n)}, {"$inc": {"n": BUMP}})
                for n in range(CONCURRENT_INCREMENTS)
            )
        )
        assert all(result.modified_count == 1 for result in increments)
        deleted = await docs.delete_one({"_id": doc_id(DELETED)})
        assert deleted.deleted_count == 1
        # The very last acknowledged write before the kill.
        await counters.update_one({"_id": counter_id}, {"$set": {"last": True}})
    finally:
        await client.close()


def expected_document(n: int) -> Document:
    return {
        "_id": doc_id(n),
        "n": n + BUMP if n < CONCURRENT_INCREMENTS else n,
        "payload": ("x" if n < SINGLE_INSERTS else "y") * 200,
    }


async def check_everything(uri: str, generations: int) -> None:
    """Every acknowledged write of `generations` rounds is there; the failure lists the rest."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    problems: list[str] = []
    try:
        database = client[DATABASE]
        for generation in range(generations):
            found = {
                document["_id"]: document
                async for document in database[f"docs_{generation}"].find({})
            }
            wanted = [n for n in range(SINGLE_INSERTS + BATCH_INSERTS) if n != DELETED]
            missing = [doc_id(n) for n in wanted if doc_id(n) not in found]
            wrong = [
                f"{doc_id(n)} n={found[doc_id(n)]['n']}"
                for n in wanted
                if doc_id(n) in found and found[doc_id(n)] != expected_document(n)
            ]
            if missing:
                problems.append(f"gen {generation}: {len(missing)} inserts lost {missing[:5]}")
            if wrong:
                problems.append(f"gen {generation}: {len(wrong)} updates lost {wrong[:5]}")
            if doc_id(DELETED) in found:
                problems.append(f"gen {generation}: the delete of {doc_id(DELETED)} was lost")
            if len(found) != len(wanted):
                problems.append(f"gen {generation}: {len(found)} documents, not {len(wanted)}")
            counter = await database["counters"].find_one({"_id": f"g{generation}"})
            if counter != {"_id": f"g{generation}", "value": INCREMENTS, "last": True}:
                problems.append(f"gen {generation}: counter {counter}, not {INCREMENTS} + last")
    finally:
        await client.close()
    assert not problems, "acknowledged writes lost: " + "; ".join(problems)


@pytest.mark.parametrize("mode_name", list(MODES))
async def test_acknowledged_writes_survive_kill_9(tmp_path: Path, mode_name: str) -> None:
    mode = MODES[mode_name]
    server = await start(tmp_path, mode)
    try:
        await write_acknowledged(server.uri, 0, mode.write_concern)
        server.kill()
        assert server.process is not None and server.process.returncode == -9

        server = await start(tmp_path, mode)
        await check_everything(server.uri, 1)
        # The recovered files take new writes and survive a second crash too.
        await write_acknowledged(server.uri, 1, mode.write_concern)
        server.kill()

        server = await start(tmp_path, mode)
        await check_everything(server.uri, 2)
    finally:
        await asyncio.to_thread(server.stop)


async def test_clean_stop_and_start_keeps_data(tmp_path: Path) -> None:
    mode = MODES["default"]
    server = await start(tmp_path, mode)
    try:
        await write_acknowledged(server.uri, 0, mode.write_concern)
        await asyncio.to_thread(server.stop)
        assert server.process is not None and server.process.returncode is not None

        server = await start(tmp_path, mode)
        await check_everything(server.uri, 1)
    finally:
        await asyncio.to_thread(server.stop)
