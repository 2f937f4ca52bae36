"""Helpers the integration tests share for talking to a real daemon through the raw stub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sessiond_client.v1 import session_pb2, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

DM, GROUP = source_pb2.CHAT_TYPE_DM, source_pb2.CHAT_TYPE_GROUP


def source(
    chat_id: str = "1001", platform: str = "telegram", chat_type: int = DM, **fields: Any
) -> source_pb2.SessionSource:
    """A Telegram DM by default; other chat types get a ``user_id`` (``u1``) unless one is given."""
    if chat_type != DM:
        fields.setdefault("user_id", "u1")
    return source_pb2.SessionSource(platform=platform, chat_id=chat_id, chat_type=chat_type, **fields)


def get_or_create(
    stub: Any, src: source_pb2.SessionSource | None = None, force_new: bool = False
) -> pb.GetOrCreateSessionResponse:
    request = pb.GetOrCreateSessionRequest(source=src or source(), force_new=force_new)
    return stub.GetOrCreateSession(request, timeout=10)


def key_of(stub: Any, chat_id: str, **fields: Any) -> str:
    """The key of the source's session, creating it (``source(chat_id, **fields)``)."""
    return get_or_create(stub, source(chat_id, **fields)).entry.session_key


def when(timestamp: Any) -> datetime:
    return timestamp.ToDatetime(tzinfo=UTC)


def ttl(**delta: float) -> Duration:
    duration = Duration()
    duration.FromTimedelta(timedelta(**delta))
    return duration


def acquire(stub: Any, key: str, owner: str, **delta: float) -> session_pb2.Lease:
    request = pb.AcquireLeaseRequest(session_key=key, owner=owner, ttl=ttl(**delta))
    return stub.AcquireLease(request, timeout=10).lease


def load_transcript(stub: Any, session_id: str, raw: bool = False) -> list[transcript_pb2.Message]:
    """The whole transcript, following page tokens."""
    messages: list[transcript_pb2.Message] = []
    request = pb.LoadTranscriptRequest(session_id=session_id, raw=raw)
    while True:
        response = stub.LoadTranscript(request, timeout=10)
        messages.extend(response.messages)
        if not response.next_page_token:
            return messages
        request.page_token = response.next_page_token


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code ``call`` fails with (it must fail)."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def invalid_field(call: Callable[[], object]) -> str:
    """The field the INVALID_ARGUMENT status of ``call`` names."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return violated_field(raised.value)


def violated_field(error: grpc.RpcError) -> str:
    """The field an INVALID_ARGUMENT status names, checked in its BadRequest detail and message."""
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "Traceback" not in error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    field = bad_request.field_violations[0].field
    assert error.details().startswith(f"{field}: ")
    return field


@dataclass
class Snapshot:
    """Everything a rejected request could have changed that the contract lets a client see."""

    entries: list[session_pb2.SessionEntry]
    transcripts: dict[str, list[transcript_pb2.Message] | None]  # None: the session was deleted
    has_any_sessions: bool


def all_entries(stub: Any) -> list[session_pb2.SessionEntry]:
    """Every entry, following page tokens."""
    entries: list[session_pb2.SessionEntry] = []
    request = pb.ListSessionsRequest(page_size=1000)
    while True:
        page = stub.ListSessions(request, timeout=10)
        entries.extend(page.entries)
        if not page.next_page_token:
            return entries
        request.page_token = page.next_page_token


def _stored(stub: Any, session_id: str) -> list[transcript_pb2.Message] | None:
    try:
        return load_transcript(stub, session_id, raw=True)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return None


def snapshot(stub: Any, *session_ids: str) -> Snapshot:
    """Every entry (all pages), the raw transcripts of ``session_ids``, HasAnySessions."""
    return Snapshot(
        entries=all_entries(stub),
        transcripts={sid: _stored(stub, sid) for sid in session_ids},
        has_any_sessions=stub.HasAnySessions(pb.HasAnySessionsRequest(), timeout=10).has_any_sessions,
    )
