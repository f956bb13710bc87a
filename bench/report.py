"""The report: markdown tables for docs/performance.md, and the plot.

Rendered from :class:`bench.results.Results` only. Ratios are specloom over
the other system: above 1 means specloom is ahead on steps/s; for p99 a
ratio below 1 means specloom's tail is shorter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from bench.config import REPO
from bench.results import Results
from bench.targets import target_rows

HEADING = "## Benchmarks: specloom vs the limit and its peers"
ANALYSIS = REPO / "bench" / "analysis.md"
"""Hand-written analysis (profiles, what would close the gaps), included verbatim."""

STEP_DEFINITION = (
    "A **step** is one durable, committed unit of progress: the completion of one no-op "
    "step is committed to PostgreSQL (or SQLite) before the next step may start. Every "
    "system timestamps each step as its body starts (specloom: the executor receives "
    "the command over its gateway stream; DBOS: a `@DBOS.step` function is entered, "
    "one thread per workflow; "
    'LangGraph: a node is entered, with `durability="sync"`). **Per-step latency** is '
    "the interval between consecutive step starts of one workflow: one commit plus "
    "everything the system does to decide and dispatch the next step. **Steps/s** "
    "counts step starts in the steady-state window between the 10th and 90th "
    "percentile of all step starts. Concurrency is concurrent sessions / workflows / "
    "threads (pgbench: clients), each running workflows of {steps} no-op steps back "
    "to back. pgbench runs one `UPDATE … WHERE id = :id` per transaction on a "
    "{rows}-row table."
)


LEGEND = (
    "*specloom (PG)*: one process per service as on Kubernetes (`specloom serve sessions`, "
    "the bench orchestrator, `specloom serve gateway`) on PostgreSQL; *specloom up*: every "
    "service in one process (`specloom up`'s composition). In both, the executors are the "
    "harness's no-op `Connect` streams (up to 16 streams, one process). DBOS and LangGraph "
    "run in the caller's process with a 20-connection pool each; Sessions' pool is its "
    "default (10 + 20 overflow). pgbench at 256 is capped at the server's free "
    "connections (`max_connections`), shown in brackets."
)


def fmt(value: Any, digits: int = 3) -> str:
    """A figure for a table: thousands separators, a few significant digits, — if absent."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return "—"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    if abs(number) >= 10:
        return f"{number:.1f}"
    return f"{number:.{digits - 1}f}" if abs(number) >= 1 else f"{number:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


PEER_NAMES = ("dbos", "dbos-async", "langgraph", "langgraph-async")

SYSTEM_LABELS = {
    "postgres": "specloom (PG)",
    "postgres-up": "specloom up (PG)",
    "sqlite": "specloom up (SQLite)",
    "dbos": "DBOS",
    "dbos-async": "DBOS (async API)",
    "langgraph": "LangGraph",
    "langgraph-async": "LangGraph (async durability)",
}


Lookup = Callable[[int], dict[str, Any] | None]


def series(results: Results) -> dict[str, Lookup]:
    """Each system's stats by concurrency: specloom modes and peers."""
    out: dict[str, Lookup] = {}

    def index(runs: list[dict[str, Any]], key: str, name: str) -> None:
        by_c = {int(r["concurrency"]): r["stats"] for r in runs if r.get(key) == name}
        if by_c:
            out[name] = by_c.get

    for mode in ("postgres", "postgres-up", "sqlite"):
        index(results.specloom, "mode", mode)
    for peer in PEER_NAMES:
        index(results.peers, "peer", peer)
    return out


def _get(lookup: Lookup | None, c: int, key: str) -> float | None:
    if lookup is None:
        return None
    stats = lookup(c)
    return None if stats is None else float(stats[key])


def _throughput(results: Results, systems: dict[str, Lookup]) -> list[str]:
    pgb = {int(r["clients"]): r for r in results.pgbench}
    levels = [int(c) for c in results.config.get("concurrency", [])]
    spec = systems.get("postgres")
    peers = [p for p in PEER_NAMES if p in systems]
    extra = [m for m in ("postgres-up", "sqlite") if m in systems]
    header = ["sessions", "pgbench TPS", "specloom (PG)", "specloom / pgbench"]
    header += [SYSTEM_LABELS[p] for p in peers]
    header += [f"specloom / {SYSTEM_LABELS[p]}" for p in peers]
    header += [SYSTEM_LABELS[m] for m in extra]
    rows = []
    for c in levels:
        p = pgb.get(c)
        tps = float(p["tps"]) if p else None
        clients = "" if not p or p["clients_used"] == c else f" ({p['clients_used']} clients)"
        mine = _get(spec, c, "steps_per_s")
        share = ratio(mine, tps)
        row = [str(c), fmt(tps) + clients, fmt(mine), "—" if share is None else f"{share:.1%}"]
        row += [fmt(_get(systems[x], c, "steps_per_s")) for x in peers]
        row += [fmt(ratio(mine, _get(systems[x], c, "steps_per_s"))) for x in peers]
        row += [fmt(_get(systems[m], c, "steps_per_s")) for m in extra]
        rows.append(row)
    return table(header, rows)


def _latency(results: Results, systems: dict[str, Lookup]) -> list[str]:
    pgb = {int(r["clients"]): r for r in results.pgbench}
    levels = [int(c) for c in results.config.get("concurrency", [])]
    names = [s for s in SYSTEM_LABELS if s in systems]
    peers = [p for p in PEER_NAMES if p in systems]
    header = ["sessions", "pgbench"] + [SYSTEM_LABELS[s] for s in names]
    header += [f"p99 specloom / {SYSTEM_LABELS[p]}" for p in peers]
    rows = []
    for c in levels:
        p = pgb.get(c)
        row = [str(c), f"{fmt(p['p50_ms'])} / {fmt(p['p99_ms'])}" if p else "—"]
        for s in names:
            row.append(
                f"{fmt(_get(systems[s], c, 'p50_ms'))} / {fmt(_get(systems[s], c, 'p99_ms'))}"
            )
        mine = _get(systems.get("postgres"), c, "p99_ms")
        row += [fmt(ratio(mine, _get(systems[x], c, "p99_ms"))) for x in peers]
        rows.append(row)
    return table(header, rows)


def _cpu(results: Results) -> list[str]:
    runs = [r for r in results.specloom if r.get("cpu_ms_per_step")]
    if not runs:
        return []
    names = sorted({name for r in runs for name in r["cpu_ms_per_step"]})
    rows = []
    for r in runs:
        cpu = r["cpu_ms_per_step"]
        total = sum(float(v) for v in cpu.values())
        label = f"{SYSTEM_LABELS.get(r['mode'], r['mode'])}, {r['concurrency']}"
        rows.append([label] + [fmt(cpu.get(n)) for n in names] + [fmt(total)])
    return [
        "",
        "### specloom: CPU per step, by process (ms)",
        "",
        "User + system CPU of each process over a level, divided by its steps "
        "(from `bench.step_overhead`); steadier than wall time on a shared machine. Two "
        "cores give 2,000 ms of CPU per second, so 2,000 / total bounds steps/s.",
        "",
        *table(["shape, sessions", *names, "total"], rows),
    ]


def _growth(results: Results) -> list[str]:
    if not results.growth and not results.sessions_append:
        return []
    lines = ["", "### Growth: per-step cost by history length", ""]
    if results.growth:
        base = results.growth[0]
        rows = [
            [
                f"{int(g['history']):,}",
                fmt(g["p50_ms"]),
                fmt(g["p99_ms"]),
                fmt(g["mean_ms"]),
                fmt(ratio(g["p50_ms"], base["p50_ms"])),
            ]
            for g in results.growth
        ]
        lines += [
            "One session per history length on PostgreSQL, grown through the full path "
            "(executor → gateway → orchestrator → Sessions) to that length, then stepped "
            "in turn, one step at a time (interleaved, so load on the machine hits every "
            "length alike): from the executor sending a result to the next command arriving.",
            "",
        ]
        lines += table(
            ["history", "p50 ms", "p99 ms", "mean ms", f"p50 / p50 at {base['history']}"], rows
        )
    if results.sessions_append:
        lines += ["", "Sessions append alone (`bench/sessions_append.py`):", ""]
        lines += table(
            ["figure", "value"],
            [
                [str(k), fmt(v) if isinstance(v, int | float) else str(v)]
                for k, v in results.sessions_append.items()
            ],
        )
    return lines


def _fanout(results: Results) -> list[str]:
    if not results.fanout:
        return []
    rows = [
        [
            f"{int(f['children']):,}",
            str(f["executors"]),
            fmt(f["all_first_command_s"]),
            fmt(f["join_s"]),
            fmt(f.get("children_per_s")),
        ]
        for f in results.fanout
    ]
    return [
        "",
        "### Fan-out",
        "",
        "A parent spawns N one-step no-op children; times from the spawn (the parent's "
        "first result sent) to every child's first command at an executor, and to the "
        "parent's next command after the join.",
        "",
        *table(["children", "executors", "all first commands (s)", "join (s)", "children/s"], rows),
    ]


def _executors(results: Results) -> list[str]:
    e = results.executors
    if not e:
        return []
    rows = [
        ["idle executor streams", f"{int(e['count']):,}"],
        ["gateway RSS before (MB)", fmt(e["rss_before_mb"])],
        ["gateway RSS with streams (MB)", fmt(e["rss_after_mb"])],
        ["per stream (KB)", fmt(e["per_stream_kb"])],
        [
            "next-command push p50 / p99 (ms)",
            f"{fmt(e['push_p50_ms'])} / {fmt(e['push_p99_ms'])}",
        ],
        [
            "start push p50 / p99 (ms)",
            f"{fmt(e.get('start_push_p50_ms'))} / {fmt(e.get('start_push_p99_ms'))}",
        ],
        [
            "StartSession call alone p50 / p99 (ms)",
            f"{fmt(e.get('start_call_p50_ms'))} / {fmt(e.get('start_call_p99_ms'))}",
        ],
        ["connecting every stream (s)", fmt(e.get("connect_s"))],
    ]
    return [
        "",
        "### Idle executors on one gateway",
        "",
        "Push latency, with every stream idle: two-step sessions started one at a time. "
        "*Next-command push*: from the first command's arrival (answered at once) to the "
        "second's — one step, commit included. *Start push*: from calling "
        "StartSession to the first command's arrival (session creation included).",
        "",
        *table(["figure", "value"], rows),
    ]


def _profiles(results: Results) -> list[str]:
    if not results.profiles:
        return []
    lines = [
        "",
        "### Profiles (py-spy, `--profile`)",
        "",
        "Samples holding the GIL (`py-spy record --gil`; each service is one interpreter, "
        "so GIL time bounds it). `gateway-bench-*`: a separate 64-session run on "
        "PostgreSQL (split shape), so the sampler does not touch the figures above; "
        "`fanout-*`: the widest fan-out run again, under the sampler (its figures are not "
        "published). Shares are of all samples of that process: package totals (self time), "
        "the functions with the most self time, and our own functions with callees included.",
        "",
    ]
    for p in results.profiles:
        if p.get("error"):
            lines.append(f"- `{p['name']}`: no profile ({p['error']})")
            continue
        top = ", ".join(f"{pkg} {share:.0%}" for pkg, share in p["by_package"][:6])
        lines.append(f"- `{p['name']}` ({p['samples']} samples, `{p['svg']}`): {top}")
        for fn, share in p["self_by_function"][:6]:
            lines.append(f"  - {share:.1%} self in `{fn}`")
        ours = ", ".join(f"`{fn}` {share:.0%}" for fn, share in p.get("ours_inclusive", [])[:8])
        if ours:
            lines.append(f"  - inside our code (callees included): {ours}")
    return lines


def _postgres(machine: dict[str, Any]) -> str:
    settings = machine.get("postgresql_settings") or {}
    knobs = ", ".join(
        f"{k}={settings[k]}"
        for k in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
        if k in settings
    )
    return f"{machine.get('postgresql', '?')}" + (f" ({knobs})" if knobs else "")


def render(results: Results) -> str:
    """The whole section, heading included."""
    m = results.machine
    cfg = results.config
    systems = series(results)
    lines = [HEADING, ""]
    lines.append(
        "Generated by `make bench` (`python -m bench`); raw figures in `bench/out/results.json` "
        "(not committed), flame graphs in `bench/out/`, plot below. Parts can be chosen "
        "(`python -m bench --only pgbench,peers,specloom`), shrunk for a smoke test "
        "(`--quick`), profiled (`--profile`) and re-rendered from saved figures "
        "(`--render bench/out/results.json`); `python -m bench --help` lists them."
    )
    lines += [""]
    lines += table(
        ["machine", ""],
        [
            ["CPU", f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"],
            ["RAM", f"{m.get('ram_gib', '?')} GiB"],
            ["kernel", str(m.get("kernel", "?"))],
            ["PostgreSQL", _postgres(m)],
            ["Python", str(m.get("python", "?"))],
            ["commit", f"`{m.get('commit', '?')}`"],
            ["date", str(m.get("date", "?"))],
            ["load average before / after", f"{m.get('load_before')} / {m.get('load_after')}"],
        ],
    )
    if cfg.get("quick"):
        lines += ["", "> **Quick mode**: smoke-test sizes; these figures mean nothing."]
    for note in results.notes:
        lines += ["", f"> {note}"]
    lines += [
        "",
        STEP_DEFINITION.format(steps=cfg.get("steps_per_workflow"), rows=cfg.get("pgbench_rows")),
    ]
    lines += ["", "### Steps per second", "", *_throughput(results, systems)]
    lines += ["", LEGEND]
    lines += ["", "### Per-step latency, p50 / p99 (ms)", "", *_latency(results, systems)]
    lines += ["", "![steps/s and p99 against concurrency](bench-concurrency.png)"]
    lines += _cpu(results)
    lines += _growth(results) + _fanout(results) + _executors(results)
    lines += ["", "### Targets", "", *table(["target", "figure", "met"], target_rows(results))]
    lines += _profiles(results)
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text().strip()]
    if results.skipped:
        lines += ["", "### Not measured in this run", ""]
        lines += [f"- {part}: {why}" for part, why in sorted(results.skipped.items())]
    return "\n".join(lines).rstrip() + "\n"
