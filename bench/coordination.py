"""What identity links, handoffs and turn fencing cost a call (issue 18): each feature's RPC beside
the same call without it, on one daemon, in the same run.

One ``sessiond serve`` on a fresh database, default configuration (durability ``full``), Unix
socket. Pairs, each at c=1 and c=8 (a key, a session and a turn per caller thread, never shared):

- ``AppendMessages x1`` unfenced, and fenced with the thread's turn (``BeginTurn`` once first):
  the fence is one primary-key read of the ``turns`` row in the write's transaction;
- ``GetOrCreateSession`` of a DM, links off (the reference's key), and links on
  (``GatewayConfig.link_identities``) for a user id linked to an identity: one more read;
- ``BeginTurn`` with ``INTERRUPT`` (every call ends the thread's turn and begins the next: an
  event each), beside ``GetOrCreateSession`` of an existing key (a write of similar size);
- ``HandoffSession`` of the thread's session to a new chat each call (the destination's entry
  written, a lineage row, an event on each key), beside ``GetOrCreateSession`` of an existing key.

Each pair runs ``profile.rounds`` rounds, A then B, of ``profile.target_seconds`` of timed calls
each; a figure is the median over the rounds (``load.median``), and the ratio is B's over A's of
that run. ``python -m bench.coordination [--quick | --full]`` runs this section alone.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from bench import load, report, servers
from bench.profiles import DEFAULT, FULL, QUICK, Profile
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc, source_pb2, transcript_pb2

METHOD = "/sessiond.v1.SessionStore/{}"
CONCURRENCY = (1, 8)
Requests = Callable[[int, int], list[bytes]]  # (thread, count) -> that thread's requests


def _dm(chat_id: str, user_id: str = "") -> source_pb2.SessionSource:
    return source_pb2.SessionSource(platform="telegram", chat_id=chat_id, user_id=user_id or None)


def _prepare(target: str) -> dict[str, tuple[tuple[str, Requests], tuple[str, Requests]]]:
    """The pairs: (label, requests) without the feature, and with it."""
    ids = itertools.count()
    linked = pb.GatewayConfig(link_identities=True)
    sessions, turns = [], []
    with grpc.insecure_channel(target) as channel:
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        for thread in range(max(CONCURRENCY)):
            entry = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=_dm(f"a{thread}")), timeout=30).entry
            sessions.append(entry.session_id)
            begin = pb.BeginTurnRequest(session_key=entry.session_key, owner="bench", ttl={"seconds": 3600})
            token = stub.BeginTurn(begin, timeout=30).turn.fencing_token
            turns.append(pb.TurnFence(session_key=entry.session_key, fencing_token=token))
            link = pb.LinkIdentityRequest(platform="telegram", user_id=f"u{thread}", identity=f"p{thread}")
            stub.LinkIdentity(link, timeout=30)
            stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=_dm(f"h{thread}")), timeout=30)

    def appends(fenced: bool) -> Requests:
        def make(thread: int, count: int) -> list[bytes]:
            def one() -> bytes:
                message = transcript_pb2.Message(role="user", text="hello", message_id=f"c{next(ids)}")
                fence = turns[thread] if fenced else None
                request = pb.AppendMessagesRequest(session_id=sessions[thread], messages=[message], fence=fence)
                return request.SerializeToString()

            return [one() for _ in range(count)]

        return make

    def get_or_create(config: pb.GatewayConfig | None, prefix: str) -> Requests:
        def make(thread: int, count: int) -> list[bytes]:
            source = _dm(f"{prefix}{thread}", f"u{thread}")
            return [pb.GetOrCreateSessionRequest(source=source, config=config).SerializeToString()] * count

        return make

    def begin_turns(thread: int, count: int) -> list[bytes]:
        key = f"agent:main:telegram:dm:t{thread}"
        request = pb.BeginTurnRequest(
            session_key=key, owner="bench", ttl={"seconds": 600}, on_conflict=pb.TURN_CONFLICT_INTERRUPT
        )
        return [request.SerializeToString()] * count

    def handoffs(thread: int, count: int) -> list[bytes]:
        key = f"agent:main:telegram:dm:h{thread}"
        return [
            pb.HandoffSessionRequest(session_key=key, target_source=_dm(f"d{next(ids)}")).SerializeToString()
            for _ in range(count)
        ]

    return {
        "fence": (("AppendMessages x1", appends(False)), ("AppendMessages x1 fenced", appends(True))),
        "links": (
            ("GetOrCreateSession links off", get_or_create(None, "l")),
            ("GetOrCreateSession linked DM", get_or_create(linked, "l")),
        ),
        "turns": (("GetOrCreateSession", get_or_create(None, "a")), ("BeginTurn interrupt", begin_turns)),
        "handoff": (("GetOrCreateSession", get_or_create(None, "a")), ("HandoffSession", handoffs)),
    }


def run(workdir: Path, profile: Profile) -> dict[str, Any]:
    """The pairs' rows (``report.coordination_table`` prints them)."""
    rows = []
    directory = workdir / "coordination"
    directory.mkdir()
    with contextlib.ExitStack() as stack:
        daemon = servers.start_sessiond(directory, directory / "sessiond.db")
        stack.callback(daemon.stop)
        for feature, pair in _prepare(daemon.unix).items():
            for concurrency in CONCURRENCY:
                measured: list[list[load.Stats]] = [[], []]
                for _ in range(profile.rounds):
                    for side, (label, make) in enumerate(pair):
                        method = METHOD.format(label.split()[0])  # the label starts with the RPC's name
                        per = load.per_thread(profile.warmup, concurrency, seconds=profile.target_seconds)
                        requests = [make(thread, per) for thread in range(concurrency)]
                        stats = load.drive(
                            daemon.unix, method, requests, profile.warmup,
                            seconds=profile.target_seconds, pids=[daemon.process.pid],
                        )  # fmt: skip
                        measured[side].append(stats)
                without, with_ = (load.median(runs) for runs in measured)
                rows.append(
                    {
                        "feature": feature,
                        "concurrency": concurrency,
                        "without": {"label": pair[0][0], **asdict(without)},
                        "with": {"label": pair[1][0], **asdict(with_)},
                        "p50_ratio": with_.p50_ms / without.p50_ms,
                        "rps_ratio": with_.rps / without.rps,
                    }
                )
    return {"rows": rows, "rounds": profile.rounds, "seconds": profile.target_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coordination", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL if args.full else DEFAULT
    with tempfile.TemporaryDirectory(prefix="sessiond-bench-") as workdir:
        coordination = run(Path(workdir), profile)
    sys.stdout.write(report.coordination_table(coordination) + "\n")
    report.RESULTS.mkdir(exist_ok=True)
    path = report.RESULTS / f"coordination-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"profile": asdict(profile), "coordination": coordination}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
