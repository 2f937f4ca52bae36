"""Who may call: TLS, mutual TLS and the bearer token on TCP, nothing on the Unix socket; and logs
that carry no ids, message text or secrets.

Certificates are made here: a CA with a server certificate for 127.0.0.1 and localhost and a
client certificate, and a rogue CA with a client certificate of its own.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from helpers.daemons import Running
from helpers.wire import all_entries
from sessiond import logs
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server
from sessiond.errors import ConfigError
from sessiond.rpc.auth import REJECTED
from sessiond_client import TLS, SessionStoreClient, connect
from sessiond_client.channel import open_channel
from sessiond_client.errors import PermissionDeniedError, SessiondError
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc, source_pb2

TOKEN = "token-3b6a41f0c9"
SOURCE = source_pb2.SessionSource(platform="telegram", chat_id="-100777", chat_type=source_pb2.CHAT_TYPE_GROUP)
Metadata = tuple[tuple[str, str], ...]
WITH_TOKEN: Metadata = (("authorization", f"Bearer {TOKEN}"),)


# -- certificates --------------------------------------------------------------------------------


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    """A certificate for ``key``: a CA's own when ``issuer`` is None, else one signed by ``issuer``."""
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if name == "server":
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<name>.pem`` and ``<name>.key`` for ca, server, client, rogue-ca and rogue-client."""
    directory = tmp_path_factory.mktemp("pki")
    made: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = {}
    issuers = {"ca": None, "server": "ca", "client": "ca", "rogue-ca": None, "rogue-client": "rogue-ca"}
    for name, issuer in issuers.items():
        key = ec.generate_private_key(ec.SECP256R1())
        made[name] = (_certificate(name, key, made[issuer] if issuer else None), key)
        (directory / f"{name}.pem").write_bytes(made[name][0].public_bytes(serialization.Encoding.PEM))
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (directory / f"{name}.key").write_bytes(private)
    return directory


def tls(pki: Path, ca: str = "ca", client: str | None = None) -> TLS:
    """Client TLS options: trust ``ca``; present ``client``'s certificate when given."""
    roots = (pki / f"{ca}.pem").read_bytes()
    if client is None:
        return TLS(root_certificates=roots)
    return TLS(roots, (pki / f"{client}.key").read_bytes(), (pki / f"{client}.pem").read_bytes())


def server_tls(pki: Path) -> dict[str, str]:
    return {"tls_cert": str(pki / "server.pem"), "tls_key": str(pki / "server.key")}


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    return str(path)


def start_tcp(start_daemon: Callable[..., Running], security: dict[str, object], **server: str) -> tuple[Running, str]:
    """A daemon on a Unix socket (its ``stub``) and loopback TCP (the address returned)."""
    running = start_daemon({"server": {"tcp": "127.0.0.1:0", **server}, "security": security})
    return running, running.daemon.addresses[1]


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    """The status ``call`` fails with (OK when it does not)."""
    try:
        call()
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return error.code()
    except SessiondError as error:
        return error.code
    return grpc.StatusCode.OK


def build_key(channel: grpc.Channel, metadata: Metadata = ()) -> grpc.StatusCode:
    stub = session_store_pb2_grpc.SessionStoreStub(channel)
    request = pb.BuildSessionKeyRequest(source=SOURCE)
    return status_of(lambda: stub.BuildSessionKey(request, timeout=5, metadata=metadata))


def health_status(channel: grpc.Channel, metadata: Metadata = ()) -> grpc.StatusCode:
    stub = health_pb2_grpc.HealthStub(channel)
    return status_of(lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=metadata))


# -- the bearer token ----------------------------------------------------------------------------


def test_tcp_needs_the_token_refusals_write_nothing_and_the_socket_needs_none(
    start_daemon: Callable[..., Running], token_file: str
) -> None:
    running, tcp = start_tcp(start_daemon, {"token_file": token_file})
    refused: list[Metadata] = [
        (),
        (("authorization", "Bearer not-the-token"),),
        (("authorization", TOKEN),),  # no scheme
        (("authorization", f"Basic {TOKEN}"),),
        (("authorization", f"Bearer {TOKEN}x"),),
    ]
    with grpc.insecure_channel(tcp) as channel:
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        for metadata in refused:
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=SOURCE), timeout=5, metadata=metadata)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert raised.value.details() == REJECTED
        assert all_entries(running.stub) == []  # read on the Unix socket, which needs no token

        request = pb.GetOrCreateSessionRequest(source=SOURCE)
        on_socket = running.stub.GetOrCreateSession(request, timeout=5)
        on_tcp = stub.GetOrCreateSession(request, timeout=5, metadata=WITH_TOKEN)
        assert on_socket.created and not on_tcp.created and on_tcp.entry.session_id == on_socket.entry.session_id
    with SessionStoreClient(tcp, token=TOKEN) as store:
        assert store.get_session(on_socket.entry.session_key) is not None


def test_health_is_exempt_from_the_token_and_reflection_is_not(
    start_daemon: Callable[..., Running], token_file: str
) -> None:
    _, tcp = start_tcp(start_daemon, {"token_file": token_file})
    with grpc.insecure_channel(tcp) as channel:
        assert health_status(channel) == grpc.StatusCode.OK
        with pytest.raises(grpc.RpcError) as raised:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with connect(tcp, token=TOKEN) as client:
        assert client.is_serving()
        assert client.build_session_key(SOURCE).session_key == "agent:main:telegram:group:-100777"


def test_health_needs_the_token_when_not_exempt_except_on_the_probe_listener(
    start_daemon: Callable[..., Running], token_file: str
) -> None:
    security = {"token_file": token_file, "health_without_auth": False}
    running, tcp = start_tcp(start_daemon, security, health_tcp="127.0.0.1:0")
    with grpc.insecure_channel(tcp) as channel:
        assert health_status(channel) == grpc.StatusCode.UNAUTHENTICATED
        assert health_status(channel, WITH_TOKEN) == grpc.StatusCode.OK
    probe = running.daemon.addresses[2].removeprefix("health:")
    with grpc.insecure_channel(probe) as channel:
        assert health_status(channel) == grpc.StatusCode.OK


# -- TLS -----------------------------------------------------------------------------------------


def test_tls_serves_clients_that_trust_its_ca_and_no_one_else(start_daemon: Callable[..., Running], pki: Path) -> None:
    _, tcp = start_tcp(start_daemon, server_tls(pki))
    with connect(tcp, tls=tls(pki)) as client:  # TLS alone: no token asked
        assert client.build_session_key(SOURCE).session_key == "agent:main:telegram:group:-100777"
    with open_channel(tcp, tls=tls(pki, ca="rogue-ca")) as channel:
        assert build_key(channel) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(tcp) as channel:
        assert build_key(channel) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate_from_its_ca(start_daemon: Callable[..., Running], pki: Path) -> None:
    _, tcp = start_tcp(start_daemon, {**server_tls(pki), "tls_client_ca": str(pki / "ca.pem")})
    for refused in (tls(pki), tls(pki, client="rogue-client")):
        with open_channel(tcp, tls=refused) as channel:
            assert build_key(channel) == grpc.StatusCode.UNAVAILABLE
    with SessionStoreClient(tcp, tls=tls(pki, client="client")) as store:
        assert store.build_session_key(SOURCE) == "agent:main:telegram:group:-100777"


def test_a_scoped_client_certificate_reaches_only_its_namespace_and_reads(
    start_daemon: Callable[..., Running], pki: Path
) -> None:
    scoped = [{"subject": "client", "namespaces": ["research"], "read_only": True}]
    security = {**server_tls(pki), "tls_client_ca": str(pki / "ca.pem"), "scoped_clients": scoped}
    running, tcp = start_tcp(start_daemon, security)
    running.stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=SOURCE), timeout=5)  # main, on the socket
    with SessionStoreClient(tcp, tls=tls(pki, client="client"), namespace="research") as store:
        assert store.build_session_key(SOURCE) == "agent:research:telegram:group:-100777"
        assert store.list_sessions() == []  # main's entry is not research's
        with pytest.raises(PermissionDeniedError, match="may only read"):
            store.get_or_create_session(SOURCE)
    with SessionStoreClient(tcp, tls=tls(pki, client="client")) as unscoped:
        with pytest.raises(PermissionDeniedError, match="namespace"):
            unscoped.list_sessions()  # a scoped caller names its namespace
    assert len(all_entries(running.stub)) == 1


def test_tls_and_a_token_together_need_both(start_daemon: Callable[..., Running], pki: Path, token_file: str) -> None:
    _, tcp = start_tcp(start_daemon, {**server_tls(pki), "token_file": token_file})
    with open_channel(tcp, tls=tls(pki)) as channel:
        assert build_key(channel) == grpc.StatusCode.UNAUTHENTICATED
    with open_channel(tcp, token=TOKEN) as channel:
        assert build_key(channel) == grpc.StatusCode.UNAVAILABLE
    with open_channel(tcp, token=TOKEN, tls=tls(pki)) as channel:
        assert build_key(channel) == grpc.StatusCode.OK


def test_health_command_sends_the_token_and_trusts_the_ca(
    start_daemon: Callable[..., Running], pki: Path, token_file: str
) -> None:
    _, tcp = start_tcp(start_daemon, {**server_tls(pki), "token_file": token_file, "health_without_auth": False})
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIOND_")}

    def probe(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "sessiond.cli", "health", "--address", tcp, "--tls-ca", str(pki / "ca.pem")]
        argv.extend(args)
        return subprocess.run(argv, env={**env, **extra_env}, capture_output=True, text=True, timeout=30)

    refused = probe()
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stdout
    assert probe("--token-file", token_file).returncode == 0
    assert probe(SESSIOND_TOKEN=TOKEN).returncode == 0


def test_unusable_tls_files_stop_the_daemon_at_start(tmp_path: Path, pki: Path) -> None:
    def start(security: dict[str, str]) -> None:
        data = {
            "server": {"socket": "", "tcp": "127.0.0.1:0"},
            "storage": {"path": str(tmp_path / "sessiond.db")},
            "security": security,
        }
        create_server(config_module.parse(data)).stop(0)

    with pytest.raises(ConfigError, match=r"^security\.tls_cert: cannot read"):
        start({"tls_cert": str(tmp_path / "absent.pem"), "tls_key": str(pki / "server.key")})
    with pytest.raises(ConfigError, match=r"^server\.tcp: cannot listen .*tls_cert"):
        start({"tls_cert": str(pki / "server.key"), "tls_key": str(pki / "server.key")})


# -- logs ----------------------------------------------------------------------------------------


def test_hashed_ids_match_within_a_run_and_show_nothing_of_the_id() -> None:
    assert logs.hashed("4915550001234") == logs.hashed("4915550001234")
    assert logs.hashed("4915550001234") != logs.hashed("4915550001235")
    assert "4915550001234" not in logs.hashed("4915550001234")


def test_logged_exceptions_keep_the_stack_not_the_message() -> None:
    phone = "4915550001234"

    def fail(key: str) -> None:
        raise KeyError(key)

    try:
        fail(f"agent:main:telegram:dm:{phone}")
    except KeyError:
        record = logging.LogRecord("sessiond.rpc", logging.ERROR, __file__, 1, "rpc failed", None, sys.exc_info())
    line = json.loads(logs.JsonFormatter().format(record))
    assert "in fail" in line["exc"] and line["exc"].endswith("KeyError")
    assert phone not in json.dumps(line)


def test_logs_carry_no_ids_message_text_or_token(tmp_path: Path) -> None:
    """Traffic with distinctive ids, text and tokens through a daemon logging at debug level."""
    user, chat, phone, text, wrong = "user-7c1d9e", "chat-5a3f20", "4915550001234", "text-9f8e7d", "wrong-88d2e1"
    mapping = tmp_path / "mapping"
    mapping.mkdir()
    (mapping / f"lid-mapping-{phone}.json").write_text("not json")  # logged as unreadable
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "sessiond.toml").write_text(
        f"""
        [server]
        socket = "{tmp_path / "sessiond.sock"}"
        tcp = "127.0.0.1:0"
        [storage]
        path = "{tmp_path / "sessiond.db"}"
        [log]
        level = "debug"
        [security]
        token_file = "{tmp_path / "token"}"
        [whatsapp]
        mapping_dir = "{mapping}"
        """
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIOND_")}
    argv = [sys.executable, "-m", "sessiond.cli", "serve", "--config", str(tmp_path / "sessiond.toml")]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        logged = [next(line for line in iter(process.stderr.readline, "") if '"serving"' in line)]
        tcp = json.loads(logged[0])["addresses"][1]
        source = {"platform": "telegram", "chat_id": chat, "chat_type": "group", "user_id": user, "user_name": user}
        with SessionStoreClient(tcp, token=TOKEN) as store:
            entry = store.get_or_create_session(source)
            store.append_to_transcript(entry.session_id, {"role": "user", "content": text})
            assert store.load_transcript(entry.session_id)[0]["content"] == text
            assert store.get_session(f"agent:main:telegram:dm:{user}") is None
            whatsapp = {"platform": "whatsapp", "chat_id": f"{phone}@s.whatsapp.net", "chat_type": "dm"}
            assert store.build_session_key(whatsapp) == f"agent:main:whatsapp:dm:{phone}"
        with SessionStoreClient(tcp, token=wrong) as store:
            assert status_of(lambda: store.get_or_create_session(source)) == grpc.StatusCode.UNAUTHENTICATED
        process.send_signal(signal.SIGTERM)
        logged.append(process.stderr.read())  # until the daemon closes it: its exit is the signal, not a clock
        assert process.wait() == 0
    finally:
        process.kill()
        process.wait()
    output = "".join(logged)
    assert '"msg": "rpc"' in output and "unreadable WhatsApp mapping file" in output  # debug lines were written
    for secret in (user, chat, phone, text, TOKEN, wrong):
        assert secret not in output
