from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHAT_TYPE_UNSPECIFIED: _ClassVar[ChatType]
    CHAT_TYPE_DM: _ClassVar[ChatType]
    CHAT_TYPE_GROUP: _ClassVar[ChatType]
    CHAT_TYPE_CHANNEL: _ClassVar[ChatType]
    CHAT_TYPE_THREAD: _ClassVar[ChatType]
CHAT_TYPE_UNSPECIFIED: ChatType
CHAT_TYPE_DM: ChatType
CHAT_TYPE_GROUP: ChatType
CHAT_TYPE_CHANNEL: ChatType
CHAT_TYPE_THREAD: ChatType

class SessionSource(_message.Message):
    __slots__ = ("platform", "chat_id", "chat_name", "chat_type", "user_id", "user_name", "thread_id", "chat_topic", "user_id_alt", "chat_id_alt", "is_bot", "guild_id", "parent_chat_id", "message_id")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_NAME_FIELD_NUMBER: _ClassVar[int]
    CHAT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_NAME_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_TOPIC_FIELD_NUMBER: _ClassVar[int]
    USER_ID_ALT_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_ALT_FIELD_NUMBER: _ClassVar[int]
    IS_BOT_FIELD_NUMBER: _ClassVar[int]
    GUILD_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    platform: str
    chat_id: str
    chat_name: str
    chat_type: ChatType
    user_id: str
    user_name: str
    thread_id: str
    chat_topic: str
    user_id_alt: str
    chat_id_alt: str
    is_bot: bool
    guild_id: str
    parent_chat_id: str
    message_id: str
    def __init__(self, platform: _Optional[str] = ..., chat_id: _Optional[str] = ..., chat_name: _Optional[str] = ..., chat_type: _Optional[_Union[ChatType, str]] = ..., user_id: _Optional[str] = ..., user_name: _Optional[str] = ..., thread_id: _Optional[str] = ..., chat_topic: _Optional[str] = ..., user_id_alt: _Optional[str] = ..., chat_id_alt: _Optional[str] = ..., is_bot: _Optional[bool] = ..., guild_id: _Optional[str] = ..., parent_chat_id: _Optional[str] = ..., message_id: _Optional[str] = ...) -> None: ...

class HomeChannel(_message.Message):
    __slots__ = ("platform", "chat_id", "name", "thread_id", "user_id", "scope_id")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CHAT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    THREAD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_ID_FIELD_NUMBER: _ClassVar[int]
    platform: str
    chat_id: str
    name: str
    thread_id: str
    user_id: str
    scope_id: str
    def __init__(self, platform: _Optional[str] = ..., chat_id: _Optional[str] = ..., name: _Optional[str] = ..., thread_id: _Optional[str] = ..., user_id: _Optional[str] = ..., scope_id: _Optional[str] = ...) -> None: ...
