from __future__ import annotations

import os
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from retail_kit.embedded import EmbeddedDatabase
from retail_kit.mongo import (
    Document,
    IndexDeclaration,
    connect,
    ensure_indexes,
    find_by_ids,
)
from retail_kit.settings import EMBEDDED_MONGODB_URI, ServiceSettings
from retail_kit.testing import unique_name

DECLARED = (
    IndexDeclaration("things", (("status", 1), ("_id", 1)), "status_id"),
    IndexDeclaration("things", (("code", 1),), "code", unique=True),
)


async def test_ensure_indexes_is_idempotent_and_adds_new_declarations(mongo_uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        database = client[unique_name("indexes")]
        await database["things"].insert_one({"_id": "t1", "status": "a", "code": "c1"})
        await ensure_indexes(database, DECLARED[:1])
        await ensure_indexes(database, DECLARED)
        await ensure_indexes(database, DECLARED)
        names = {index["name"] async for index in await database["things"].list_indexes()}
        assert {"_id_", "status_id", "code"} <= names
        assert await database["things"].count_documents({}) == 1
    finally:
        await client.close()


async def test_find_by_ids_returns_only_existing_documents(mongo_uri: str) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        things = client[unique_name("by_ids")]["things"]
        await things.insert_many([{"_id": f"t{n}", "n": n} for n in range(30)])
        found = await find_by_ids(things, ["t3", "missing", "t29", "t3"])
        assert found == {"t3": {"_id": "t3", "n": 3}, "t29": {"_id": "t29", "n": 29}}
        assert await find_by_ids(things, []) == {}
    finally:
        await client.close()


class WriteCommands(CommandListener):
    """Records the insert and update commands a client sends."""

    def __init__(self) -> None:
        self.commands: list[Document] = []

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update"):
            self.commands.append(dict(event.command))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def test_embedded_uris_turn_retryable_writes_off_and_others_keep_them() -> None:
    """The embedded default and every EmbeddedDatabase URI: off; a URI a user sets (a
    production MongoDB) is taken as given: PyMongo's default (on) unless it says otherwise."""
    embedded = EmbeddedDatabase(Path("unused"), 27999)
    for uri in (EMBEDDED_MONGODB_URI, ServiceSettings().mongodb_uri, embedded.uri):
        assert connect(uri, "test").options.retry_writes is False, uri
    production = "mongodb://db.internal:27017/?replicaSet=rs0"
    assert connect(production, "test").options.retry_writes is True
    assert connect(f"{production}&retryWrites=false", "test").options.retry_writes is False


async def test_embedded_server_writes_carry_no_retryable_write_number(mongo_uri: str) -> None:
    """On the wire: the client the services build from the embedded URI sends single-document
    writes without `txnNumber`, so SecantusDB keeps no retryable-write record for them (and
    never runs its record scan). The same server asked with retryable writes on does get
    `txnNumber`: the absence comes from the option, not from the server kind."""
    if os.environ.get("MONGODB_URI"):
        pytest.skip("embedded server only: a MONGODB_URI is used as the user set it")
    plain, retrying = WriteCommands(), WriteCommands()
    client = connect(mongo_uri, "test", listeners=[plain])
    control: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_uri, retryWrites=True, event_listeners=[retrying]
    )
    try:
        assert client.options.retry_writes is False
        database = unique_name("retryable")
        for listener_client in (client, control):
            things = listener_client[database]["things"]
            await things.insert_one({"_id": id(listener_client), "n": 0})
            await things.update_one({"_id": id(listener_client)}, {"$inc": {"n": 1}})
        assert [c.get("txnNumber") for c in plain.commands] == [None, None]
        assert all("txnNumber" in c for c in retrying.commands)
        assert len(retrying.commands) == 2
    finally:
        await client.close()
        await control.close()
