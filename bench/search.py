"""Full-text search (issue 17): what SearchMessages and SearchSessions cost on a large store, and
what keeping the index costs every append.

Latency. ``texts`` makes ``profile.search_messages`` messages (``MESSAGES_PER_SESSION`` per session)
of varied text: sentences drawn from a vocabulary of ``VOCABULARY`` words, the word of rank r with
weight 1/r (Zipf), from a seeded generator, so every run and both databases hold the same text;
a few marker words occur in a handful of messages, a phrase in a fraction of them, and every
``TITLED_EVERY``-th session has a title. The database is filled the way ``populate`` fills one:
the storage in-process, its Transaction methods, one write job (relaxed), the index kept by its
triggers as the rows go in, so it is complete when the daemon opens it. A twin database with
``full_text_search = false`` gets the same rows: the difference in size and in time to populate
is the index's. Then a daemon on the indexed one, once it is idle (``settle``: after it starts it
reads the whole file once, in the background), answers each query of ``queries`` for
``profile.search_seconds`` of closed-loop calls at c=1 and at c=8 (Unix socket); a row keeps the
first page's hits and the total the query matches (counted in the database beforehand). Ranking
is O(matches), so the most frequent word (in most messages) is the worst case, measured too.

Appends. The two databases then serve two daemons whose configurations differ only in
``storage.full_text_search``: AppendMessages of one message and of 100 per call, at c=1 and c=8,
both durability modes, ``profile.search_rounds`` rounds of ``profile.target_seconds`` each, the two
daemons taking turns (ABBA: the first of a round alternates), each figure the median over the
rounds, as ``rpc_suite`` measures its target cells. The ratio of messages per second with the
index to without is checked against ``targets.SEARCH_APPEND``.

``python -m bench.search [--quick | --full]`` runs this section alone and prints its tables.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import grpc

from bench import load, populate, report, servers, targets
from bench.profiles import DEFAULT, FULL, QUICK, Profile
from bench.servers import Server
from sessiond.model import Entry, KeyOptions, Message, Source, fold
from sessiond.rules import keys, search
from sessiond.rules.whatsapp import no_mapping
from sessiond.storage.interface import Transaction
from sessiond.storage.rows import prefix_range
from sessiond.storage.sqlite import SqliteStorage
from sessiond.storage.sqlite_search import fts5_match
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc, transcript_pb2

SEED = 17
MESSAGES_PER_SESSION = 10
VOCABULARY = 4_000
# The most frequent words, most frequent first, then made-up words of two to four syllables: real
# words where the queries need them (a common word, a phrase's words, words starting with "wor").
COMMON_WORDS = """
    the to and of a i you it is that in we for this on can be with have not do are what will so but my if at me
    just your about was as or how from like an they get there all one would know think need here time should out
    up some yes now then no make see when error more want let which because could sure also check good file them
    any thanks way help look right new did has still something our been only work other try run code first today
    use into after too over back again world fix test change set going update why by project data before thing
    build release meeting plan where issue week much server tomorrow send word call version last team find really
    those okay keep yesterday deployment next done start window working long well note list said worth worry
    worker workflow worse worst wording worked workshop
""".split()
SYLLABLES = tuple(c + v for c in "bcdfghjklmnprstvz" for v in "aeiou") + ("qu", "sh", "th", "ch", "an", "el")
MARKERS = ("quetzalcoatl", "xylophonist", "kumquat")  # each in MARKER_COUNT messages, spread over the store
MARKER_COUNT = 5
PHRASE, PHRASE_RATE = "deployment window", 0.003  # put into this fraction of messages (its words occur alone too)
COMMON_WORD = "error"  # a few percent of the messages
TITLED_EVERY = 10
TITLE_TOPICS = (
    "Deployment plan", "Budget review", "Travel to Lisbon", "Weekly sync", "Bug triage", "Hiring loop",
    "Deployment checklist", "Quarterly goals", "Customer call", "Release notes",
)  # fmt: skip
TITLE_QUERY = "deploy"  # the start of two topics' titles: TITLED_EVERY * 5 sessions of 100
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # the first session starts here, the next a minute later, ...

CONCURRENCY = (1, 8)
DURABILITY = ("full", "relaxed")
WARMUP = 2  # untimed calls per thread before each search run (a slow query's c=8 warm-up is 16 of them)
MAX_RPS = 5_000  # search calls per second the request lists allow for (the run is bounded by time)
APPEND_MAX_RPS = {1: 10_000, 100: 1_000}  # the same per messages per call, for the append runs
SESSION_MESSAGES = 10_000  # an append thread moves to a fresh session after this many (limit: 100,000)
METHOD = "/sessiond.v1.SessionStore/{}"
SETTLE_QUIET, SETTLE_CPU = 0.5, 0.1  # a daemon is settled once it used < 10% of a core over half a second


# -- the corpus ------------------------------------------------------------------------------


def vocabulary(rng: random.Random, size: int = VOCABULARY) -> list[str]:
    """``COMMON_WORDS``, then made-up words until ``size``, in rank order (most frequent first)."""
    words = list(dict.fromkeys(COMMON_WORDS))
    seen = set(words) | set(MARKERS)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def texts(count: int, seed: int = SEED) -> list[str]:
    """``count`` message texts, user and assistant by turns: a user message is one or two sentences
    of 3 to 14 words, an assistant's two to four of 5 to 20. The same ``seed``, the same texts."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(words) + 1)))
    shapes = [
        [rng.randint(3, 14) for _ in range(rng.randint(1, 2))]
        if i % 2 == 0
        else [rng.randint(5, 20) for _ in range(rng.randint(2, 4))]
        for i in range(count)
    ]
    drawn = iter(rng.choices(words, cum_weights=weights, k=sum(map(sum, shapes))))
    marked = {
        (MARKER_COUNT * i + n) * count // (MARKER_COUNT * len(MARKERS)) + 7 * i + 3: marker
        for i, marker in enumerate(MARKERS)
        for n in range(MARKER_COUNT)
    }
    result = []
    for index, shape in enumerate(shapes):
        sentences = [list(itertools.islice(drawn, length)) for length in shape]
        if index in marked:
            sentences[0][rng.randrange(len(sentences[0]))] = marked[index]
        if rng.random() < PHRASE_RATE:
            sentences[-1][rng.randrange(len(sentences[-1]))] = PHRASE
        ends = rng.choices((".", "?", "!"), weights=(8, 2, 1), k=len(sentences))
        result.append(" ".join(" ".join(s).capitalize() + end for s, end in zip(sentences, ends, strict=True)))
    return result


def title(index: int) -> str | None:
    """The title of session ``index``: every ``TITLED_EVERY``-th has one (unique: the index is in it)."""
    if index % TITLED_EVERY:
        return None
    return f"{TITLE_TOPICS[index // TITLED_EVERY % len(TITLE_TOPICS)]} {index}"


def fill(
    db: Path, corpus: Sequence[str], full_text_search: bool, started_at: Callable[[int], datetime] | None = None
) -> float:
    """Store ``corpus`` as transcripts of ``MESSAGES_PER_SESSION`` messages (sessions and entries of
    ``populate.source``, started a minute apart unless ``started_at`` says when each did, some
    titled); the seconds it took, commit included."""
    sessions = len(corpus) // MESSAGES_PER_SESSION

    def work(tx: Transaction) -> None:
        for index in range(sessions):
            origin = Source(**populate.source(index))
            started = started_at(index) if started_at else T0 + timedelta(minutes=index)
            key = keys.build_session_key(origin, KeyOptions(), no_mapping)
            session_id = populate.session_id(index)
            tx.create_session(session_id, origin.platform, origin.user_id, started, key, origin.chat_type)
            tx.put_entry(Entry.started(key, session_id, origin, started))
            if (named := title(index)) is not None:
                tx.set_title(session_id, named)
            first = index * MESSAGES_PER_SESSION
            batch = [
                Message(
                    role=("user", "assistant")[n % 2],
                    content=corpus[first + n],
                    message_id=f"m{n}",
                    timestamp=started + timedelta(seconds=20 * n),
                )
                for n in range(MESSAGES_PER_SESSION)
            ]
            tx.append_messages(session_id, batch, started)

    started = time.perf_counter()
    storage = SqliteStorage(db, durable=False, full_text_search=full_text_search)
    try:
        storage.write(work)
    finally:
        storage.close()
    return time.perf_counter() - started


# -- the queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    rpc: str  # "SearchMessages" or "SearchSessions"
    fields: dict[str, Any]

    def request(self) -> bytes:
        message = pb.SearchMessagesRequest if self.rpc == "SearchMessages" else pb.SearchSessionsRequest
        return message(**self.fields).SerializeToString()

    def shown(self) -> str:
        return " ".join(f"{name}={value!r}" for name, value in self.fields.items())


def queries(session_key: str) -> list[Query]:
    """What is measured; ``session_key`` is a key one of whose messages holds ``COMMON_WORD``."""
    return [
        Query("rare word", "SearchMessages", {"query": MARKERS[0]}),
        Query("common word", "SearchMessages", {"query": COMMON_WORD}),
        Query("two-word phrase", "SearchMessages", {"query": f'"{PHRASE}"'}),
        Query("prefix", "SearchMessages", {"query": "wor*"}),
        Query("common word, one key", "SearchMessages", {"query": COMMON_WORD, "session_key": session_key}),
        Query("most frequent word", "SearchMessages", {"query": "the"}),
        Query("title prefix", "SearchSessions", {"query": TITLE_QUERY}),
    ]


def _value(db: Path, sql: str, params: Any = ()) -> Any:
    """The first column of the first row of ``sql`` on a read-only connection of its own (None: no row)."""
    connection = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        row = connection.execute(sql, params).fetchone()
    finally:
        connection.close()
    return None if row is None else row[0]


MATCHED = """
    FROM message_index AS f JOIN messages AS m ON m.id = f.rowid JOIN sessions AS s ON s.id = m.session_id
    WHERE message_index MATCH :match
      AND (:key IS NULL OR s.session_key = :key OR s.id = (SELECT session_id FROM entries WHERE session_key = :key))
"""  # the daemon's conditions (``sqlite_search.HITS``) that the queries here use


def _key_with(db: Path, word: str) -> str:
    """The session key of a session in the middle of those with a message holding ``word``."""
    params = {"match": fts5_match(search.parse(word)), "key": None}
    count = _value(db, f"SELECT count(*) {MATCHED}", params)
    key = _value(db, f"SELECT s.session_key {MATCHED} ORDER BY f.rowid LIMIT 1 OFFSET {count // 2}", params)
    if key is None:
        raise RuntimeError(f"no stored session has {word!r} and a session key")
    return str(key)


def matches(db: Path, query: Query) -> int:
    """How many messages (sessions, for SearchSessions) the query matches in all, counted in the
    database without ranking or paging."""
    if query.rpc == "SearchSessions":
        titled = "SELECT count(*) FROM sessions WHERE title_folded >= ? AND title_folded < ?"
        return int(_value(db, titled, prefix_range(fold(query.fields["query"]))))
    params = {"match": fts5_match(search.parse(query.fields["query"])), "key": query.fields.get("session_key")}
    return int(_value(db, f"SELECT count(*) {MATCHED}", params))


def index_bytes(db: Path) -> int:
    """The pages of the full-text index's tables (dbstat)."""
    return int(_value(db, "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'message_index%'"))


def _first_page(daemon: Server, query: Query) -> dict[str, Any]:
    """One call, its response read: the hits (sessions) on the first page, whether there is a next."""
    with grpc.insecure_channel(daemon.unix) as channel:
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        if query.rpc == "SearchSessions":
            sessions = stub.SearchSessions(pb.SearchSessionsRequest(**query.fields), timeout=load.CALL_TIMEOUT)
            return {"first_page": len(sessions.sessions), "more": bool(sessions.next_page_token)}
        hits = stub.SearchMessages(pb.SearchMessagesRequest(**query.fields), timeout=load.CALL_TIMEOUT)
    if hits.index_building:
        raise RuntimeError("the daemon says the index is still being built: the population should have completed it")
    return {"first_page": len(hits.hits), "more": bool(hits.next_page_token)}


def settle(daemon: Server, quiet: float = SETTLE_QUIET, timeout: float = 300.0) -> float:
    """Wait until the daemon has used no more than ``SETTLE_CPU`` of CPU over ``quiet`` seconds; the
    seconds waited. After it serves, a daemon reads its whole database once in the background (the
    integrity check): on a large file that competes with the first measurements for the cores."""
    started = time.perf_counter()
    before = load.cpu_seconds([daemon.process.pid])
    while time.perf_counter() - started < timeout:
        time.sleep(quiet)
        now = load.cpu_seconds([daemon.process.pid])
        if now - before <= SETTLE_CPU * quiet:
            break
        before = now
    return time.perf_counter() - started


def _latency(daemon: Server, query: Query, profile: Profile) -> dict[str, Any]:
    row: dict[str, Any] = {"query": query.name, "rpc": query.rpc, "request": query.shown()}
    row.update(_first_page(daemon, query))
    for concurrency in CONCURRENCY:
        per_thread = load.per_thread(WARMUP, concurrency, seconds=profile.search_seconds, rate=MAX_RPS)
        requests = [[query.request()] * per_thread] * concurrency
        stats = load.drive(
            daemon.unix, METHOD.format(query.rpc), requests, WARMUP, servers.AUTHORIZATION,
            seconds=profile.search_seconds, pids=(daemon.process.pid,),
        )  # fmt: skip
        row[f"c{concurrency}"] = asdict(stats)
    return row


# -- appends with the index and without --------------------------------------------------------


def _config(directory: Path, full_text_search: bool) -> dict[str, str]:
    """The environment of a daemon whose configuration file sets ``storage.full_text_search`` only."""
    path = directory / f"sessiond-fts-{'on' if full_text_search else 'off'}.toml"
    path.write_text(f"[storage]\nfull_text_search = {'true' if full_text_search else 'false'}\n")
    return {"SESSIOND_CONFIG": str(path)}


class _Appends:
    """Append requests with fresh message ids and the corpus's texts, each thread on sessions of its
    own (a fresh one every ``SESSION_MESSAGES`` messages), taken from the end of the store."""

    def __init__(self, corpus: Sequence[str], sessions: int):
        self.corpus = corpus
        self.ids = itertools.count()
        self.next_session = iter(range(sessions - 1, -1, -1))

    def requests(self, size: int, concurrency: int, per_thread: int) -> list[list[bytes]]:
        per_session = max(1, SESSION_MESSAGES // size)
        return [self._thread(size, per_thread, per_session) for _ in range(concurrency)]

    def _thread(self, size: int, count: int, per_session: int) -> list[bytes]:
        requests = []
        for call in range(count):
            if call % per_session == 0:
                session_id = populate.session_id(next(self.next_session))
            messages = []
            for n in range(size):
                number = next(self.ids)
                text = self.corpus[number % len(self.corpus)]
                messages.append(
                    transcript_pb2.Message(role=("user", "assistant")[n % 2], text=text, message_id=f"a{number}")
                )
            requests.append(pb.AppendMessagesRequest(session_id=session_id, messages=messages).SerializeToString())
        return requests


def _append_cells() -> Iterator[tuple[str, int, int]]:
    for size in (1, 100):
        for concurrency in CONCURRENCY:
            yield f"AppendMessages x{size}", size, concurrency


def _append_costs(
    directories: dict[bool, Path], corpus: Sequence[str], sessions: int, profile: Profile
) -> list[dict[str, Any]]:
    """Every append cell in both durability modes: the daemon with the index and the one without, in turns."""
    appends = _Appends(corpus, sessions)
    rows = []
    for durability in DURABILITY:
        report.progress(f"appends, durability {durability}: the daemon with the index and the one without, in turns")
        with contextlib.ExitStack() as stack:
            daemons: dict[bool, Server] = {}
            for indexed, directory in directories.items():
                daemon = servers.start_sessiond(
                    directory, directory / "sessiond.db", durability, _config(directory, indexed)
                )
                stack.callback(daemon.stop)
                daemons[indexed] = daemon
            for daemon in daemons.values():
                settle(daemon)
            for name, size, concurrency in _append_cells():
                rows.append(_append_cell(name, size, concurrency, durability, daemons, appends, profile))
    return rows


def _append_cell(
    name: str, size: int, concurrency: int, durability: str, daemons: dict[bool, Server], appends: _Appends,
    profile: Profile,
) -> dict[str, Any]:  # fmt: skip
    per_thread = load.per_thread(profile.warmup, concurrency, seconds=profile.target_seconds, rate=APPEND_MAX_RPS[size])
    runs: dict[bool, list[load.Stats]] = {True: [], False: []}
    for round_number in range(profile.search_rounds):
        requests = appends.requests(size, concurrency, per_thread)  # the same bytes to both: databases of their own
        for indexed in (True, False) if round_number % 2 == 0 else (False, True):
            daemon = daemons[indexed]
            stats = load.drive(
                daemon.unix, METHOD.format("AppendMessages"), requests, profile.warmup, servers.AUTHORIZATION,
                seconds=profile.target_seconds, pids=(daemon.process.pid,),
            )  # fmt: skip
            runs[indexed].append(stats)
    on, off = load.median(runs[True]), load.median(runs[False])
    ratio = on.rps / off.rps
    where = f"{name} unix c={concurrency} {durability}"
    return {
        "scenario": name,
        "messages_per_call": size,
        "concurrency": concurrency,
        "durability": durability,
        "rounds": profile.search_rounds,
        "with_index": asdict(on),
        "without_index": asdict(off),
        "with_messages_per_s": on.rps * size,
        "without_messages_per_s": off.rps * size,
        "ratio": ratio,
        "runs": {
            "with_index": [asdict(s) for s in runs[True]],
            "without_index": [asdict(s) for s in runs[False]],
        },
        "checks": [targets.check(targets.SEARCH_APPEND, ratio, where)],
    }


# -- the section -------------------------------------------------------------------------------


def run(workdir: Path, profile: Profile) -> dict[str, Any]:
    """The corpus in two databases (index on, off), the query latencies, then the append costs."""
    messages = profile.search_messages
    sessions = messages // MESSAGES_PER_SESSION
    started = time.perf_counter()
    corpus = texts(sessions * MESSAGES_PER_SESSION)
    result: dict[str, Any] = {
        "sessions": sessions,
        "messages": len(corpus),
        "vocabulary": VOCABULARY,
        "corpus_s": time.perf_counter() - started,
        "corpus_words": sum(len(text.split()) for text in corpus),
        "seconds_per_cell": profile.search_seconds,
    }
    directories = {True: workdir / "search-on", False: workdir / "search-off"}
    for indexed, directory in directories.items():
        which = "with" if indexed else "without"
        report.progress(f"search: {sessions:,} sessions x {MESSAGES_PER_SESSION} messages, {which} the index")
        result[f"populate_{which}_index_s"] = fill(directory / "sessiond.db", corpus, indexed)
        result[f"database_{which}_index_mb"] = _megabytes(directory)
    result["index_mb"] = index_bytes(directories[True] / "sessiond.db") / 1e6
    db = directories[True] / "sessiond.db"
    measured = queries(_key_with(db, COMMON_WORD))
    totals = {query.name: matches(db, query) for query in measured}
    report.progress(f"search: {len(measured)} queries at c={CONCURRENCY}, {profile.search_seconds:g} s each")
    daemon = servers.start_sessiond(directories[True], db, environment=_config(directories[True], True))
    try:
        result["cold_start_s"] = daemon.start_seconds
        result["settle_s"] = settle(daemon)
        rows = []
        for query in measured:
            row = _latency(daemon, query, profile)
            row["matches"] = totals[query.name]
            rows.append(row)
        result["queries"] = rows
        result["rss_mb"] = daemon.memory_mb()["VmRSS"]
    finally:
        daemon.stop()
    result["appends"] = _append_costs(directories, corpus, sessions, profile)
    return result


def _megabytes(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.glob("sessiond.db*")) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description="The search section of bench.run.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL if args.full else DEFAULT
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sessiond-bench-") as workdir:
        results = run(Path(workdir), profile)
    results["section_s"] = time.perf_counter() - started
    sys.stdout.write(report.search_tables(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
