import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Message(_message.Message):
    __slots__ = ("role", "text", "json", "tool_calls_json", "tool_call_id", "tool_name", "reasoning", "reasoning_content", "reasoning_details_json", "codex_reasoning_items_json", "codex_message_items_json", "timestamp", "token_count", "finish_reason", "message_id", "position")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_JSON_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    REASONING_CONTENT_FIELD_NUMBER: _ClassVar[int]
    REASONING_DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    CODEX_REASONING_ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    CODEX_MESSAGE_ITEMS_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    json: str
    tool_calls_json: str
    tool_call_id: str
    tool_name: str
    reasoning: str
    reasoning_content: str
    reasoning_details_json: str
    codex_reasoning_items_json: str
    codex_message_items_json: str
    timestamp: _timestamp_pb2.Timestamp
    token_count: int
    finish_reason: str
    message_id: str
    position: int
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ..., json: _Optional[str] = ..., tool_calls_json: _Optional[str] = ..., tool_call_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., reasoning: _Optional[str] = ..., reasoning_content: _Optional[str] = ..., reasoning_details_json: _Optional[str] = ..., codex_reasoning_items_json: _Optional[str] = ..., codex_message_items_json: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., token_count: _Optional[int] = ..., finish_reason: _Optional[str] = ..., message_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...
