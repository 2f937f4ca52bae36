"""The daemon is explorable without its protos: a client that knows only server reflection can list, describe and call.

grpcurl is not installable here, so these tests play its part with grpcio-reflection's descriptor database (the
same FileDescriptorProtos grpcurl would fetch) and with client/examples/grpc_reflect.py as a subprocess. The
generated stubs appear only on the right-hand side of assertions, as the oracle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from helpers.daemons import Running
from sessiond_client.v1.session_store_pb2 import BuildSessionKeyRequest
from sessiond_client.v1.source_pb2 import CHAT_TYPE_GROUP, SessionSource

SCRIPT = Path(__file__).resolve().parents[1] / "client" / "examples" / "grpc_reflect.py"
SERVICES = {"sessiond.v1.SessionStore", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
SOURCE_JSON = {"platform": "telegram", "chat_id": "-1001", "chat_type": "CHAT_TYPE_GROUP", "user_id": "42"}


class ReflectionClient:
    """A dynamic client whose only knowledge of the API is what the server's reflection service returns."""

    def __init__(self, channel: grpc.Channel):
        self.channel = channel
        self.database = ProtoReflectionDescriptorDatabase(channel)
        # A fresh pool, not the default one the generated stubs registered into in this process.
        self.pool = DescriptorPool(self.database)

    def method(self, path: str) -> descriptor.MethodDescriptor:
        """The descriptor of "package.Service/Method", fetched by reflection."""
        service, method = path.split("/")
        found: descriptor.MethodDescriptor = self.pool.FindServiceByName(service).methods_by_name[method]
        return found

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A unary call from a JSON-shaped request to a JSON-shaped response."""
        method = self.method(path)
        request_class, response_class = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
        stub = self.channel.unary_unary(
            f"/{path}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = stub(json_format.ParseDict(body, request_class()), timeout=10)
        return json_format.MessageToDict(response, preserving_proto_field_name=True)


@pytest.fixture
def client(daemon: Running) -> ReflectionClient:
    return ReflectionClient(daemon.channel)


def stub_session_key(daemon: Running) -> str:
    """The oracle: the key the generated-stub path computes for SOURCE_JSON."""
    source = SessionSource(platform="telegram", chat_id="-1001", chat_type=CHAT_TYPE_GROUP, user_id="42")
    return daemon.stub.BuildSessionKey(BuildSessionKeyRequest(source=source)).session_key


def test_lists_services(client: ReflectionClient) -> None:
    assert SERVICES <= set(client.database.get_services())


def test_describes_request_type_from_reflection_alone(client: ReflectionClient) -> None:
    # Without the reflection database the symbol is unknown: everything below came over the wire.
    with pytest.raises(KeyError):
        DescriptorPool().FindMessageTypeByName("sessiond.v1.GetOrCreateSessionRequest")
    request = client.method("sessiond.v1.SessionStore/GetOrCreateSession").input_type
    assert request.full_name == "sessiond.v1.GetOrCreateSessionRequest"
    fields = {field.name: field for field in request.fields}
    assert {"source", "force_new", "config"} <= set(fields)
    source = fields["source"].message_type
    assert source is not None and source.full_name == "sessiond.v1.SessionSource"
    assert fields["force_new"].type == descriptor.FieldDescriptor.TYPE_BOOL
    chat_type = source.fields_by_name["chat_type"].enum_type
    assert chat_type is not None and chat_type.full_name == "sessiond.v1.ChatType"
    assert chat_type.values_by_name["CHAT_TYPE_GROUP"].number == 2


def test_get_or_create_session_by_json_matches_the_stub(daemon: Running, client: ReflectionClient) -> None:
    response = client.call("sessiond.v1.SessionStore/GetOrCreateSession", {"source": SOURCE_JSON})
    assert response["created"] is True
    assert response["entry"]["session_key"] == stub_session_key(daemon) == "agent:main:telegram:group:-1001:42"
    assert response["entry"]["origin"] == SOURCE_JSON
    again = client.call("sessiond.v1.SessionStore/GetOrCreateSession", {"source": SOURCE_JSON})
    assert "created" not in again and again["entry"]["session_id"] == response["entry"]["session_id"]


def test_transcript_round_trip_by_json(client: ReflectionClient) -> None:
    session_id = client.call("sessiond.v1.SessionStore/GetOrCreateSession", {"source": SOURCE_JSON})["entry"][
        "session_id"
    ]
    messages = [
        {"role": "user", "text": "what is 2+2?", "message_id": "m1"},
        {"role": "assistant", "json": '[{"type": "text", "text": "4"}]', "message_id": "m2", "token_count": "7"},
    ]
    appended = client.call("sessiond.v1.SessionStore/AppendMessages", {"session_id": session_id, "messages": messages})
    assert appended == {"appended": "2", "message_count": "2"}  # int64 travels as a JSON string
    retried = client.call("sessiond.v1.SessionStore/AppendMessages", {"session_id": session_id, "messages": messages})
    assert retried == {"duplicates": "2", "message_count": "2"}
    loaded = client.call("sessiond.v1.SessionStore/LoadTranscript", {"session_id": session_id})
    assert "next_page_token" not in loaded
    stored = [
        {key: value for key, value in message.items() if key not in ("timestamp", "position")}
        for message in loaded["messages"]
    ]
    assert stored == messages
    assert [message.get("position", "0") for message in loaded["messages"]] == ["0", "1"]


def test_health_check_by_reflection(client: ReflectionClient) -> None:
    assert client.call("grpc.health.v1.Health/Check", {}) == {"status": "SERVING"}
    assert client.call("grpc.health.v1.Health/Check", {"service": "sessiond.v1.SessionStore"}) == {"status": "SERVING"}


def test_errors_keep_their_status(client: ReflectionClient) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        client.call("sessiond.v1.SessionStore/GetSession", {"session_key": ""})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(json_format.ParseError):
        client.call("sessiond.v1.SessionStore/GetSession", {"session_key": "a", "no_such_field": 1})


# client/examples/grpc_reflect.py, the grpcurl stand-in, run as a user would.


def reflect(daemon: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), daemon.address, *args], capture_output=True, text=True, timeout=60
    )


def reflect_json(daemon: Running, *args: str) -> Any:
    result = reflect(daemon, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_example_imports_no_stubs() -> None:
    """The example must stay proto-free: only grpcio, grpcio-reflection, protobuf and the standard library."""
    tree = ast.parse(SCRIPT.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    third_party = {name.split(".")[0] for name in imported} - sys.stdlib_module_names - {"__future__"}
    assert third_party <= {"grpc", "google", "grpc_reflection"}
    assert not any(name.startswith(("sessiond", "google.protobuf.internal")) for name in imported)


def test_example_lists_and_describes(daemon: Running) -> None:
    assert SERVICES <= set(reflect_json(daemon, "list"))
    described = reflect_json(daemon, "describe", "sessiond.v1.GetOrCreateSessionRequest")
    fields = {field["name"]: field for field in described["definition"]["field"]}
    assert fields["source"]["type_name"] == ".sessiond.v1.SessionSource" and fields["force_new"]["type"] == "TYPE_BOOL"
    method = reflect_json(daemon, "describe", "sessiond.v1.SessionStore.GetOrCreateSession")["definition"]
    assert method["input_type"] == ".sessiond.v1.GetOrCreateSessionRequest"
    enum = reflect_json(daemon, "describe", "sessiond.v1.ChatType")["definition"]
    assert {"name": "CHAT_TYPE_GROUP", "number": 2} in enum["value"]


def test_example_calls_by_json(daemon: Running) -> None:
    body = json.dumps({"source": SOURCE_JSON})
    response = reflect_json(daemon, "call", "sessiond.v1.SessionStore/GetOrCreateSession", body)
    assert response["created"] is True and response["entry"]["session_key"] == stub_session_key(daemon)
    assert reflect_json(daemon, "call", "grpc.health.v1.Health/Check") == {"status": "SERVING"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("call", "sessiond.v1.SessionStore/GetSession", '{"session_key": ""}'), "error: INVALID_ARGUMENT: "),
        (("call", "sessiond.v1.SessionStore/NoSuchMethod", "{}"), "error: symbol not found: "),
        (("call", "sessiond.v1.SessionStore/GetSession", '{"no_such_field": 1}'), "error: "),
        (("describe", "sessiond.v1.NoSuchMessage"), "error: symbol not found: "),
    ],
)
def test_example_fails_with_one_line(daemon: Running, args: tuple[str, ...], expected: str) -> None:
    result = reflect(daemon, *args)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr


# grpc-requests ("grpc for Humans"), the reflection client a Python user would reach for.
