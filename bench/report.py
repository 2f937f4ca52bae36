"""The results: a readable table on stdout, and JSON with the machine it ran on.

One row per measurement; a measured value that a target of issue 5, 15 or 17 applies to is
followed by ``pass`` or ``MISS`` (the target is in the column header or on the line). The JSON
keeps every number, including the echo runs, each round of a target cell and each check, under
``bench/results/<timestamp>.json``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import apsw
import grpc

from bench import targets

RESULTS = Path(__file__).resolve().parent / "results"


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds the table only."""
    sys.stderr.write(f"[bench {datetime.now():%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def machine() -> dict[str, Any]:
    """What the numbers depend on: cores, load when the run started, and the versions in play."""
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": metadata.version("protobuf"),
        "apsw": apsw.apswversion(),
        "sqlite": apsw.sqlite_lib_version(),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def save(results: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def render(results: dict[str, Any]) -> str:
    """Every section the run measured (``--postgres-only`` runs have the PostgreSQL one only)."""
    sections = [_header(results)]
    if "rpc" in results:
        sections += [
            _rpc(results["rpc"]),
            _durability(results["rpc"]),
            _scaling(results["scaling"], results["memory"]),
            _reference(results["reference"]),
        ]
    if "search" in results:
        sections.append(search_tables(results["search"]))
    if "retention" in results:
        sections.append(retention_tables(results["retention"]))
    if "coordination" in results:
        sections.append(coordination_table(results["coordination"]))
    if "postgres" in results:
        sections.append(_postgres(results["postgres"]))
    sections.append(_summary(results))
    return "\n\n".join(sections) + "\n"


def _header(results: dict[str, Any]) -> str:
    m, p = results["machine"], results["profile"]
    lines = [
        f"sessiond benchmark: profile {p['name']}, {results['started']}, {results['total_s']:.0f} s",
        f"machine: {m['cores']} cores ({m['cpu']}), load average at start {m['load_average'][0]:.2f}, {m['platform']}",
        f"versions: Python {m['python']}, grpcio {m['grpcio']}, protobuf {m['protobuf']}, apsw {m['apsw']},"
        f" SQLite {m['sqlite']}",
        f"runs: closed loop; the cells a target applies to: {p['rounds']} rounds of the aio echo, the sync echo"
        f" and sessiond in turn, {p['target_seconds']:g} s of timed calls each, the median of each figure;"
        f" other cells one run of {p['calls']:,} timed calls ({p['heavy_calls']:,} for heavy scenarios);"
        f" {p['warmup']} warm-up calls per thread excluded; latencies in ms",
        "client: this process, one thread and one channel per caller, sharing the cores with the server;"
        " requests and responses as bytes, so the client's work is the same for sessiond and echo;"
        " every call carries a bearer token (sessiond checks it on TCP)",
        "cpu: the server process's user + system CPU time (/proc/<pid>/stat) over the timed calls, ms per call",
    ]
    if "fsync" in results:
        f = results["fsync"]
        lines.append(
            f"fsync: {f['repetitions']} writes of {f['bytes']} B + os.fsync in the daemon's database directory:"
            f" median {f['median_ms']:.3f} ms, p90 {f['p90_ms']:.3f} ms; the c=1 full-durability limit of a write is"
            f" 1 / (1/echo rps + {f['median_ms']:.3f} ms)"
        )
    return "\n".join(lines)


def _marked(
    value: float | None, row: dict[str, Any], target: targets.Target | Sequence[targets.Target], fmt: str
) -> str:
    """The value, followed by pass or MISS when the row was checked against ``target`` (or one of them)."""
    if value is None:
        return ""
    keys = {target.key} if isinstance(target, targets.Target) else {t.key for t in target}
    return f"{value:{fmt}}{_verdict(next((c for c in row.get('checks', []) if c['target'] in keys), None))}"


def _verdict(check: dict[str, Any] | None) -> str:
    return "" if check is None else " pass" if check["ok"] else " MISS"


RPS_TARGETS = (targets.RPS_C8, targets.RPS_C1, targets.RPS_RELAXED)  # all ">= 0.85", by cell


def _limits(row: dict[str, Any]) -> list[str]:
    """Both echoes' rps, the limit (which echo, + fsync at c=1 for writes), rps / limit, the p99 ratio."""
    e = row["echo"]
    return [
        *(f"{e[name]['rps']:,.0f}" for name in ("echo-aio", "echo-sync")),
        row["limit"],
        f"{row['limit_rps']:,.0f}",
        _marked(row["rps_ratio"], row, RPS_TARGETS, ".2f"),
        f"{e[row['faster_echo']]['p99_ms']:.2f}",
        _marked(row["p99_ratio"], row, targets.P99_C8, ".2f"),
    ]


def _cpu(row: dict[str, Any]) -> list[str]:
    """Server CPU ms per timed call: sessiond, the aio echo, the sync echo."""
    stats = [row["sessiond"], row["echo"]["echo-aio"], row["echo"]["echo-sync"]]
    return [f"{s['cpu_ms_per_call']:.3f}" for s in stats]


LIMIT_HEADERS = ["aio rps", "sync rps", "limit", "limit rps", f"rps/limit ({targets.RPS_C8})", "echo p99"]
LIMIT_HEADERS += [f"p99/echo ({targets.P99_C8})", "cpu ms: sessiond", "aio", "sync"]


def _rpc(rows: list[dict[str, Any]]) -> str:
    headers = ["scenario", "via", "c", "req B", "rps", "p50", "p99", *LIMIT_HEADERS, f"msg/s ({targets.APPEND})"]
    body = []
    for row in (r for r in rows if r["durability"] == "full"):
        s = row["sessiond"]
        body.append(
            [row["scenario"], row["transport"], row["concurrency"], row["request_bytes"], f"{s['rps']:,.0f}"]
            + [f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", *_limits(row), *_cpu(row)]
            + [_marked(row["messages_per_s"], row, targets.APPEND, ",.0f")]
        )
    title = (
        "RPCs against the echo servers (durability full). limit: the faster echo's rps (aio or sync), at c=1 for"
        " writes with one fsync added; echo p99: the faster echo's; targets on the hot RPCs over the Unix socket"
    )
    return _table(title, headers, body)


def _durability(rows: list[dict[str, Any]]) -> str:
    full = {
        (r["scenario"], r["concurrency"]): r for r in rows if r["durability"] == "full" and r["transport"] == "unix"
    }
    headers = ["scenario", "c", "full rps", "full p99", "relaxed rps", "p50", "p99", "relaxed/full rps"]
    headers += [*LIMIT_HEADERS, f"msg/s ({targets.APPEND})"]
    body = []
    for row in (r for r in rows if r["durability"] == "relaxed"):
        before, s = full[(row["scenario"], row["concurrency"])]["sessiond"], row["sessiond"]
        body.append(
            [row["scenario"], row["concurrency"], f"{before['rps']:,.0f}", f"{before['p99_ms']:.2f}"]
            + [f"{s['rps']:,.0f}", f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['rps'] / before['rps']:.2f}"]
            + [*_limits(row), *_cpu(row), _marked(row["messages_per_s"], row, targets.APPEND, ",.0f")]
        )
    title = (
        "Durability: the write scenarios on the Unix socket, full (fsync per commit) vs relaxed;"
        " the relaxed runs against the echo servers measured beside them"
    )
    return _table(title, headers, body)


def _scaling(rows: list[dict[str, Any]], memory: dict[str, Any]) -> str:
    headers = ["sessions", "populate s", "database MB", f"cold start s ({targets.COLD_START})"]
    headers += ["p50", "p90", "p99", "mean", f"p50 ratio ({targets.SCALING})"]
    body = []
    for row in rows:
        g = row["get_or_create"]
        body.append(
            [f"{row['sessions']:,}", f"{row['populate_s']:.1f}", f"{row['database_mb']:,.0f}"]
            + [_marked(row["cold_start_s"], row, targets.COLD_START, ".2f")]
            + [f"{g[k]:.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")]
            + [_marked(row.get("scaling_ratio"), row, targets.SCALING, ".2f")]
        )
    title = "Scaling: GetOrCreateSession on a stored key, c=1, Unix socket (ratio: largest / smallest scaling size)"
    m = memory
    lines = [
        f"Memory: the daemon with {m['sessions']:,} sessions and {m['messages']:,} messages"
        f" (messages populated in {m['populate_messages_s']:.1f} s, database {m['database_mb']:,.0f} MB),"
        " after every scenario at c=8:",
        f"  VmRSS {_marked(m['rss_mb'], m, targets.RSS, ',.1f')} ({targets.RSS} MB), peak {m['peak_rss_mb']:,.1f} MB;"
        f" cold start with the messages {_marked(m['cold_start_s'], m, targets.COLD_START, '.2f')}"
        f" ({targets.COLD_START} s)",
    ]
    return _table(title, headers, body) + "\n" + "\n".join(lines)


def _reference(rows: list[dict[str, Any]]) -> str:
    headers = ["sessions", "populate s", "calls", "reference ms/op", "sessiond ms/op", "reference/sessiond", "target"]
    body = []
    for row in rows:
        check = row["checks"][0] if row["checks"] else None
        ratio = f"{row['ratio']:,.0f}{_verdict(check)}"
        body.append(
            [f"{row['sessions']:,}", f"{row['populate_s']:.1f}", row["calls"]]
            + [f"{row['reference_ms']:,.2f}", f"{row['sessiond_ms']:.2f}", ratio, check["bound"] if check else ""]
        )
    title = "Reference: the in-process store's get_or_create_session on a stored key (median) vs sessiond (p50, c=1)"
    return _table(title, headers, body)


def search_tables(search: dict[str, Any]) -> str:
    """The queries' latency on the indexed store, then appends with the index and without (``bench.search``)."""
    s = search
    per_message = s["corpus_words"] / s["messages"]
    headers = ["query", "rpc", "request", "first page", "matches", "c=1 p50", "p99", "rps", "cpu ms"]
    headers += ["c=8 p50", "p99", "rps", "cpu ms"]
    body = []
    for row in s["queries"]:
        line: list[Any] = [row["query"], row["rpc"], row["request"], f"{row['first_page']}{'+' * row['more']}"]
        line.append(f"{row['matches']:,}")
        for concurrency in ("c1", "c8"):
            stats = row[concurrency]
            line += [f"{stats['p50_ms']:.2f}", f"{stats['p99_ms']:.2f}", f"{stats['rps']:,.0f}"]
            line.append(f"{stats['cpu_ms_per_call']:.2f}")
        body.append(line)
    title = (
        f"Search: {s['sessions']:,} sessions x {s['messages'] // s['sessions']} messages ({per_message:.0f} words each,"
        f" Zipf over {s['vocabulary']:,} words), Unix socket, {s['seconds_per_cell']:g} s per cell,"
        " default page (20) and window (1); first page: hits returned (+: a next page), matches: all the query's in"
        " the database"
    )
    with_mb, without_mb = s["database_with_index_mb"], s["database_without_index_mb"]
    notes = [
        f"populate: {s['populate_with_index_s']:.1f} s with the index, {s['populate_without_index_s']:.1f} s without"
        f" (text generated in {s['corpus_s']:.1f} s); database {with_mb:,.0f} MB with, {without_mb:,.0f} MB without"
        f" (+{with_mb - without_mb:,.0f} MB, +{(with_mb / without_mb - 1) * 100:.0f}%; the index's tables"
        f" {s['index_mb']:,.0f} MB); cold start with the index {s['cold_start_s']:.2f} s, then its background"
        f" integrity check {s['settle_s']:.1f} s (waited for: idle daemon), VmRSS after the queries"
        f" {s['rss_mb']:,.0f} MB",
    ]
    headers_append = ["scenario", "durability", "c", "with index msg/s", "p50", "p99", "without msg/s", "p50", "p99"]
    headers_append.append(f"with/without ({targets.SEARCH_APPEND})")
    appends = []
    for row in s["appends"]:
        on, off = row["with_index"], row["without_index"]
        appends.append(
            [row["scenario"], row["durability"], row["concurrency"], f"{row['with_messages_per_s']:,.0f}"]
            + [f"{on['p50_ms']:.2f}", f"{on['p99_ms']:.2f}", f"{row['without_messages_per_s']:,.0f}"]
            + [f"{off['p50_ms']:.2f}", f"{off['p99_ms']:.2f}", _marked(row["ratio"], row, targets.SEARCH_APPEND, ".2f")]
        )
    rounds = s["appends"][0]["rounds"] if s["appends"] else 0
    append_title = (
        "Search index cost: AppendMessages on the two databases above, daemons identical but for"
        f" storage.full_text_search, {rounds} round{'s' * (rounds != 1)} of each in turns (ABBA), the median of each"
        " figure"
    )
    return "\n".join([_table(title, headers, body), *notes, "", _table(append_title, headers_append, appends)])


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f}"


def retention_tables(retention: dict[str, Any]) -> str:
    """DeleteSessions of half the store, live traffic around it, the file before and after Admin.Vacuum
    (``bench.retention``)."""
    r, d, v = retention, retention["deletes"], retention["vacuum"]
    kept = r["sessions"] - d["sessions"]
    title = (
        f"Retention: DeleteSessions(selector {{{r['selector']}}}, limit {r['limit']}) until remaining = 0,"
        f" over the Unix socket, durability full, on {r['sessions']:,} sessions x {r['messages'] // r['sessions']}"
        f" messages (full-text index on; half {r['ages_days'][0]} days old, half {r['ages_days'][1]}); latencies in ms"
    )
    headers = ["calls", "sessions", "messages", "seconds", "sessions/s", "messages/s", "call p50", "p99", "max"]
    headers += ["first call", "last full call", "daemon cpu s"]
    body = [
        [d["calls"], f"{d['sessions']:,}", f"{d['messages']:,}", f"{d['seconds']:.1f}", f"{d['sessions_per_s']:,.0f}"]
        + [f"{d['messages_per_s']:,.0f}", f"{d['p50_ms']:.0f}", f"{d['p99_ms']:.0f}", f"{d['max_ms']:.0f}"]
        + [f"{d['first_ms']:.0f}", f"{d['last_full_ms']:.0f}", f"{d['daemon_cpu_s']:.1f}"]
    ]
    dry = r["dry_run"]
    notes = [
        f"dry run first: {dry['sessions']:,} sessions, {dry['messages']:,} messages selected, in"
        f" {dry['seconds'] * 1000:.0f} ms; populated in {r['populate_s']:.1f} s (text {r['corpus_s']:.1f} s),"
        f" cold start {r['cold_start_s']:.2f} s, idle after {r['settle_s']:.1f} s; {kept:,} sessions kept",
    ]
    live_title = (
        "Live traffic meanwhile: two closed-loop c=1 callers running together throughout, on kept keys"
        f" ({r['baseline_seconds']:g} s before the first delete, then during the deletes, then during the Vacuum);"
        " a call counts in the window it started in"
    )
    windows = (("before", "before"), ("deletes", "during deletes"), ("vacuum", "during Vacuum"))
    live_headers = ["caller"] + [f"{label} {what}" for _, label in windows for what in ("p50", "p99", "max", "rps")]
    live_headers.append("during/before p99")
    live = []
    for row in r["live"]:
        line: list[Any] = [row["caller"]]
        for window, _ in windows:
            w = row[window]
            line += (
                [f"{w['p50_ms']:.2f}", f"{w['p99_ms']:.2f}", f"{w['max_ms']:.0f}", f"{w['rps']:,.0f}"]
                if w["calls"]
                else ["", "", "", "0"]
            )
        line.append(f"{row['deletes']['p99_ms'] / row['before']['p99_ms']:.1f}" if row["deletes"]["calls"] else "")
        live.append(line)
    stages = (
        ("populated", "populated, no daemon"),
        ("settled", "daemon started, idle"),
        ("deleted", "after the deletes"),
        ("vacuumed", "after Admin.Vacuum"),
        ("stopped", "daemon stopped (WAL checkpointed)"),
    )
    space_headers = ["stage", "sessiond.db MB", "-wal MB", "pages", "free pages", "free MB"]
    space = []
    for key, label in stages:
        s = r["space"][key]
        space.append(
            [label, _mb(s["db_bytes"]), _mb(s["wal_bytes"]), f"{s['page_count']:,}", f"{s['freelist_count']:,}"]
            + [_mb(s["freelist_count"] * s["page_size"])]
        )
    populated = r["space"]["populated"]
    space_title = (
        f"Space: os.stat of the files; pages by PRAGMA page_count / freelist_count (page {populated['page_size']:,} B,"
        f" auto_vacuum {populated['auto_vacuum']}: 2 = incremental) on a read-only connection of the bench"
    )
    vacuum_lines = [
        f"Admin.Vacuum: {v['seconds']:.2f} s, {v['responses']} response{'s' * (v['responses'] != 1)},"
        f" free_pages_before {v['free_pages_before']:,},"
        f" pages_freed {v['pages_freed']:,} ({_mb(v['pages_freed'] * populated['page_size'])} MB), converted"
        f" {v['converted']}, file_bytes reported {_mb(v['file_bytes'])} MB, daemon cpu {v['daemon_cpu_s']:.1f} s",
        f"reclaimed: {_mb(r['reclaimed_bytes'])} MB of the file (populated - stopped); the deleted share of the file"
        f" ({d['messages']:,} / {r['messages']:,} messages x {_mb(populated['db_bytes'])} MB) is"
        f" {_mb(r['deleted_share_bytes'])} MB: reclaimed/deleted {r['reclaimed_ratio']:.2f}; the live writer appended"
        f" {r['live_appended']:,} messages meanwhile",
    ]
    before, after = r["btrees_before"], r["btrees_after"]
    names = sorted(set(before) | set(after), key=lambda n: -max(before.get(n, 0), after.get(n, 0)))
    tree_rows = [
        [name, _mb(before.get(name, 0)), _mb(after.get(name, 0)), _mb(after.get(name, 0) - before.get(name, 0))]
        for name in names
        if max(before.get(name, 0), after.get(name, 0)) >= 100_000
    ]
    rows_before, rows_after = r["rows_before"], r["rows_after"]
    tree_title = (
        "Where the space is: dbstat pages per b-tree (>= 0.1 MB), populated vs after the daemon stopped; rows "
        + ", ".join(f"{t} {rows_before[t]:,} -> {rows_after[t]:,}" for t in rows_before)
    )
    return "\n".join(
        [
            _table(title, headers, body),
            *notes,
            "",
            _table(live_title, live_headers, live),
            "",
            _table(space_title, space_headers, space),
            *vacuum_lines,
            "",
            _table(tree_title, ["b-tree", "MB before", "MB after", "change"], tree_rows),
        ]
    )


def _postgres(postgres: dict[str, Any]) -> str:
    """One line per scenario and concurrency: SQLite, PostgreSQL with one daemon, with two."""
    title = "PostgreSQL: the scenarios on the Unix socket, SQLite (full) vs one and two daemons sharing one PostgreSQL"
    if "skipped" in postgres:
        return f"{title}\n  skipped: {postgres['skipped']}"
    setups = (("sqlite", 1, "SQLite"), ("postgres", 1, "PG x1"), ("postgres", 2, "PG x2"))
    headers = ["scenario", "c"] + [f"{name} {what}" for *_, name in setups for what in ("rps", "p50", "p99")]
    cells = {(r["backend"], r["daemons"], r["scenario"], r["concurrency"]): r["sessiond"] for r in postgres["rows"]}
    body = []
    for scenario, concurrency in dict.fromkeys((r["scenario"], r["concurrency"]) for r in postgres["rows"]):
        line: list[Any] = [scenario, concurrency]
        for backend, daemons, _ in setups:
            s = cells.get((backend, daemons, scenario, concurrency))
            line += [f"{s['rps']:,.0f}", f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}"] if s else ["", "", ""]
        body.append(line)
    note = f"{postgres['server']}, fsync on, reached over loopback TCP; x2: the callers take turns between two daemons"
    return _table(title, headers, body) + "\n" + note


def _summary(results: dict[str, Any]) -> str:
    checks = [c for row in _all_rows(results) for c in row.get("checks", [])]
    lines = ["Targets (issues 5, 15 and 17): rows meeting each, and the worst row"]
    for target in targets.ALL:
        mine = [c for c in checks if c["target"] == target.key]
        if not mine:
            lines.append(f"  {target.what} {target}: not measured in this profile")
            continue
        worst = min(mine, key=lambda c: (c["ok"], c["value"] if target.op == ">=" else -c["value"]))
        met = sum(c["ok"] for c in mine)
        lines.append(
            f"  {target.what} {target}: {met}/{len(mine)} pass; worst {_number(worst['value'])} ({worst['where']})"
        )
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _all_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [*results["search"]["appends"]] if "search" in results else []
    if "rpc" not in results:
        return rows
    return [*results["rpc"], *results["scaling"], results["memory"], *results["reference"], *rows]


def coordination_table(coordination: dict[str, Any]) -> str:
    """Each issue-18 call beside the same kind of call without the feature (``bench.coordination``)."""
    title = (
        "Links, handoffs, turns: each call beside its baseline, same daemon, Unix socket, durability full;"
        f" median of {coordination['rounds']} rounds of {coordination['seconds']:g} s each; latencies in ms"
    )
    headers = ["c", "without", "p50", "p99", "rps", "with", "p50", "p99", "rps", "p50 ratio", "rps ratio"]
    rows = [
        [r["concurrency"], r["without"]["label"], f"{r['without']['p50_ms']:.3f}", f"{r['without']['p99_ms']:.3f}"]
        + [f"{r['without']['rps']:,.0f}", r["with"]["label"], f"{r['with']['p50_ms']:.3f}"]
        + [f"{r['with']['p99_ms']:.3f}", f"{r['with']['rps']:,.0f}", f"{r['p50_ratio']:.2f}", f"{r['rps_ratio']:.2f}"]
        for r in coordination["rows"]
    ]
    return _table(title, headers, rows)


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; text left-aligned, numbers right-aligned."""
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([title, line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])
