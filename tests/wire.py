"""Helpers the integration tests share for talking to a real daemon through the raw stub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sessiond.v1 import session_store_pb2 as pb
from sessiond.v1 import transcript_pb2


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


def invalid_field(call: Callable[[], object]) -> str:
    """The field an INVALID_ARGUMENT status names, checked in its BadRequest detail and message."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "Traceback" not in error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    field = bad_request.field_violations[0].field
    assert error.details().startswith(f"{field}: ")
    return field
