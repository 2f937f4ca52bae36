"""``python -m bench.profile --scenario NAME``: where the daemon spends its time under one bench scenario.

The benchmark says how far sessiond is from its limit; this says why. It populates a database as
``rpc_suite`` does, starts the daemon, attaches ``py-spy record --pid`` to it, drives the scenario's
load over the Unix socket for ``--seconds``, then stops the daemon with SIGTERM: py-spy stops
sampling when the process exits and writes its file. Output: a flame graph,
``bench/results/profile-<scenario>.svg``, and on stdout the functions with the most samples.

py-spy writes one format per recording, so two samplers run: the flame graph's, and a raw one
(collapsed stacks, ``--function``: one frame per function) that ``top`` aggregates. They attach
one after the other (attaching at once can fail), and the raw one is ``--nonblocking``: two
samplers that both pause the process make each other's samples fail.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench import load, populate, report, rpc_suite, scenarios, servers

PY_SPY = str(Path(sys.executable).parent / "py-spy")
TOP = 25
WARMUP = 20  # calls per thread before the timed load


class Sampler:
    """One ``py-spy record --pid`` process, started once it samples, finished once it wrote ``output``."""

    def __init__(self, pid: int, output: Path, *options: str) -> None:
        self.output = output
        argv = [PY_SPY, "record", "--pid", str(pid), "--output", str(output), *options]
        # py-spy reports on stdout ("Sampling process ...", "Wrote ..."), and its errors on stderr.
        pipes = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
        self.process = subprocess.Popen(argv, **pipes)
        assert self.process.stdout is not None
        self.lines: list[str] = []
        for raw in self.process.stdout:  # blocks until py-spy says it samples, or exits
            self.lines.append(raw.decode(errors="replace"))
            if "Sampling process" in self.lines[-1]:
                break
        else:
            self.process.wait()
            raise RuntimeError("py-spy did not start:\n" + "".join(self.lines))
        self._drain = threading.Thread(target=lambda: self.lines.extend(r.decode() for r in self.process.stdout or ()))
        self._drain.start()

    def finish(self) -> str:
        """Wait for py-spy (the sampled process has exited); its summary line ("Wrote ... Samples: N")."""
        code = self.process.wait(timeout=60)
        self._drain.join()
        if code != 0 or not self.output.exists():
            raise RuntimeError(f"py-spy exited {code}:\n" + "".join(self.lines))
        return next((line.removeprefix("py-spy> ").strip() for line in self.lines if "Wrote" in line), "")

    def close(self) -> None:
        """On an error path: do not leave py-spy behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def top(collapsed: str, count: int = TOP) -> str:
    """The ``count`` functions with the most samples of their own (self), with those under them (total).

    ``collapsed`` is py-spy's raw format: one line per distinct stack, ``root;...;leaf samples``.
    Total counts a stack once per function in it, however often a recursion repeats it."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";") if stack else ["(no Python frame)"]
        own[frames[-1]] += int(samples)
        under.update(dict.fromkeys(frames, int(samples)))
    everything = sum(own.values()) or 1
    rows = [f"{'self':>6} {'self%':>6} {'total':>6} {'total%':>6}  function (file:first line)"]
    for function, samples in sorted(own.items(), key=lambda item: (-item[1], -under[item[0]]))[:count]:
        rows.append(
            f"{samples:>6} {samples / everything:>6.1%} {under[function]:>6} {under[function] / everything:>6.1%}"
            f"  {function}"
        )
    return "\n".join(
        [f"top {min(count, len(own))} of {len(own)} functions by own samples ({everything} samples)", *rows]
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True, help=f"one of: {', '.join(scenarios.NAMES)} (or its slug)")
    parser.add_argument("--concurrency", type=int, default=8, choices=range(1, scenarios.MAX_THREADS + 1))
    parser.add_argument("--durability", default="full", choices=rpc_suite.DURABILITY)
    parser.add_argument("--seconds", type=float, default=10.0, help="of load under the samplers")
    args = parser.parse_args(argv)
    by_word = {word: name for name in scenarios.NAMES for word in (name.lower(), scenarios.slug(name))}
    if args.scenario.lower() not in by_word:
        names = "\n".join(f"  {name!r} (or {scenarios.slug(name)})" for name in scenarios.NAMES)
        parser.error(f"unknown scenario {args.scenario!r}; the scenarios are:\n{names}")
    args.scenario = by_word[args.scenario.lower()]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    slug = scenarios.slug(args.scenario)
    report.RESULTS.mkdir(exist_ok=True)
    svg, raw = report.RESULTS / f"profile-{slug}.svg", report.RESULTS / f"profile-{slug}.txt"
    with tempfile.TemporaryDirectory(prefix="sessiond-profile-") as workdir, contextlib.ExitStack() as stack:
        directory = Path(workdir)
        report.progress(f"populate {rpc_suite.DATABASE_SESSIONS:,} sessions, start the daemon ({args.durability})")
        populate.add_sessions(directory / "sessiond.db", rpc_suite.DATABASE_SESSIONS)
        daemon = servers.start_sessiond(directory, directory / "sessiond.db", args.durability)
        stack.callback(daemon.stop)
        scenario = next(s for s in scenarios.prepare(daemon.unix) if s.name == args.scenario)
        rate = load.HEAVY_MAX_RPS if scenario.heavy else load.MAX_RPS
        per_thread = load.per_thread(WARMUP, args.concurrency, seconds=args.seconds, rate=rate)
        requests = scenario.requests(args.concurrency, per_thread)
        samplers = []
        for output, options in ((svg, ()), (raw, ("--format", "raw", "--function", "--nonblocking"))):
            samplers.append(Sampler(daemon.process.pid, output, *options))
            stack.callback(samplers[-1].close)
        report.progress(f"{args.scenario}, c={args.concurrency}, {args.seconds:g} s under py-spy")
        pid = daemon.process.pid
        stats = load.drive(daemon.unix, scenario.method, requests, WARMUP, seconds=args.seconds, pids=(pid,))
        daemon.stop()  # SIGTERM: the samplers see the process exit and write their files
        summaries = [sampler.finish() for sampler in samplers]
    sys.stdout.write(
        f"{args.scenario} over the Unix socket, c={args.concurrency}, durability {args.durability}, under py-spy:"
        f" {stats.calls:,} calls in {stats.seconds:.1f} s, {stats.rps:,.0f} rps, p50 {stats.p50_ms:.2f} ms,"
        f" p99 {stats.p99_ms:.2f} ms, daemon CPU {stats.cpu_ms_per_call:.3f} ms per call\n"
        + "".join(f"py-spy: {summary}\n" for summary in summaries)
        + f"flame graph: {_shown(svg)}\ncollapsed stacks: {_shown(raw)}\n\n"
        + top(raw.read_text())
        + "\n"
    )
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


if __name__ == "__main__":
    sys.exit(main())
