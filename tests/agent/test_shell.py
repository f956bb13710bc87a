"""Process groups, time limits, cancellation and capped output, with real processes."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import time
from pathlib import Path

import pytest

from specloom.agent.shell import CappedSink, child_environment, run_process
from specloom.v1 import common_pb2 as pb

# A program that ignores SIGTERM and forks two children (one of which forks
# a grandchild), all ignoring SIGTERM too, writes every pid to a file and
# then sleeps: only SIGKILL to the whole group ends it.
STUBBORN = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid()]
for depth in range(2):
    pid = os.fork()
    if pid == 0:
        if depth == 1 and os.fork() == 0:
            with open(sys.argv[1] + ".grandchild", "w") as handle:
                handle.write(str(os.getpid()))
            time.sleep(300)
            os._exit(0)
        time.sleep(300)
        os._exit(0)
    pids.append(pid)
with open(sys.argv[1], "w") as handle:
    handle.write(" ".join(map(str, pids)))
print("ready", flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def all_pids(pid_file: Path) -> list[int]:
    """The program's, its children's and its grandchild's pids."""
    pids = [int(p) for p in pid_file.read_text().split()]
    grandchild = pid_file.with_name(pid_file.name + ".grandchild")
    if grandchild.exists():
        pids.append(int(grandchild.read_text()))
    return pids


async def wait_for_file(path: Path) -> None:
    for _ in range(200):
        if path.exists() and path.read_text().strip():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{path} never appeared")


async def test_exit_code_output_and_env(tmp_path: Path) -> None:
    chunks: list[tuple[int, bytes]] = []

    async def sink(stream: int, data: bytes) -> None:
        chunks.append((stream, data))

    script = (
        "import os,sys; print(os.environ['GREETING']); print('oops', file=sys.stderr); sys.exit(3)"
    )
    outcome = await run_process(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=child_environment({"GREETING": "hello $(whoami)"}),
        on_output=sink,
    )
    assert outcome.exit_code == 3
    assert outcome.stdout_tail == "hello $(whoami)\n"
    assert outcome.stderr_tail == "oops\n"
    assert not outcome.killed
    assert b"".join(d for s, d in chunks if s == pb.OUTPUT_STREAM_STDOUT) == b"hello $(whoami)\n"
    assert b"".join(d for s, d in chunks if s == pb.OUTPUT_STREAM_STDERR) == b"oops\n"


async def test_missing_program_is_an_outcome_not_an_exception(tmp_path: Path) -> None:
    outcome = await run_process(["definitely-not-a-program-xyz"], cwd=tmp_path)
    assert outcome.exit_code == 127
    assert "not found" in outcome.start_error


async def test_stdin_is_fed(tmp_path: Path) -> None:
    outcome = await run_process(["cat"], cwd=tmp_path, stdin=b"prompt text")
    assert outcome.stdout_tail == "prompt text"


def test_executor_settings_never_reach_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECLOOM_AGENT_TOKEN", "secret-token")
    env = child_environment({"EXTRA": "1"})
    assert "SPECLOOM_AGENT_TOKEN" not in env
    assert env["EXTRA"] == "1"


async def test_timeout_kills_a_group_that_ignores_sigterm_and_forks(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    outcome = await run_process(
        [sys.executable, "-c", STUBBORN, str(pid_file)],
        cwd=tmp_path,
        time_limit=1.5,
        kill_grace=0.5,
    )
    elapsed = time.monotonic() - started
    assert outcome.timed_out
    assert outcome.exit_code == 128 + 9  # SIGTERM was ignored; SIGKILL ended it
    assert elapsed < 10
    pids = all_pids(pid_file)
    assert len(pids) == 4
    assert not [pid for pid in pids if alive(pid)]
    assert outcome.stdout_tail == "ready\n"


async def test_cancel_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    cancel = asyncio.Event()
    task = asyncio.create_task(
        run_process(
            [sys.executable, "-c", STUBBORN, str(pid_file)],
            cwd=tmp_path,
            cancel=cancel,
            kill_grace=0.3,
        )
    )
    await wait_for_file(pid_file)
    cancel.set()
    outcome = await asyncio.wait_for(task, timeout=10)
    assert outcome.cancelled
    assert not [pid for pid in all_pids(pid_file) if alive(pid)]


async def test_cancelling_the_caller_still_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    task = asyncio.create_task(
        run_process([sys.executable, "-c", STUBBORN, str(pid_file)], cwd=tmp_path)
    )
    await wait_for_file(pid_file)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert not [pid for pid in all_pids(pid_file) if alive(pid)]


async def test_children_left_behind_do_not_hang_the_run(tmp_path: Path) -> None:
    # The program exits at once but its child keeps the pipes open.
    script = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n"
        "print('parent done')\n"
    )
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    outcome = await run_process(
        [sys.executable, "-c", script, str(pid_file)], cwd=tmp_path, kill_grace=0.3
    )
    assert time.monotonic() - started < 10
    assert outcome.exit_code == 0
    assert outcome.stdout_tail == "parent done\n"
    assert not alive(int(pid_file.read_text()))


async def test_idle_limit_kills_a_silent_program(tmp_path: Path) -> None:
    script = "import time; print('working', flush=True); time.sleep(300)"
    outcome = await run_process(
        [sys.executable, "-c", script], cwd=tmp_path, idle_limit=1.0, kill_grace=0.3
    )
    assert outcome.idle_timed_out
    assert outcome.stdout_tail == "working\n"


async def test_huge_output_is_capped_and_memory_stays_bounded(tmp_path: Path) -> None:
    total = 200 * 1024 * 1024
    script = (
        "import sys\n"
        "block = b'x' * 1048575 + b'\\n'\n"
        f"for _ in range({total // (1024 * 1024)}):\n"
        "    sys.stdout.buffer.write(block)\n"
        "sys.stdout.buffer.write(b'THE END\\n')\n"
    )
    forwarded: list[int] = []
    markers: list[bytes] = []

    async def downstream(stream: int, data: bytes) -> None:
        if stream == pb.OUTPUT_STREAM_EXECUTOR:
            markers.append(data)
        else:
            forwarded.append(len(data))

    limit = 16 * 1024 * 1024
    sink = CappedSink(downstream, limit)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    outcome = await run_process([sys.executable, "-c", script], cwd=tmp_path, on_output=sink)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert outcome.exit_code == 0
    assert outcome.output_bytes["stdout"] == total + len(b"THE END\n")
    assert sum(forwarded) == limit == sink.sent
    assert sink.truncated
    assert len(markers) == 1
    assert b"output limit" in markers[0]
    assert outcome.stdout_tail.endswith("THE END\n")
    assert len(outcome.stdout_tail.encode()) <= 64 * 1024
    # 200 MiB went through; the peak resident size of this process grew by
    # far less than that (the tail is 64 KiB; the rest is transient chunks).
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
async def test_pid_reuse_guard_only_signals_our_group(tmp_path: Path) -> None:
    # After a normal exit nothing of the group is left, and run_process does
    # not signal anything else (our own process survives, trivially).
    outcome = await run_process(["true"], cwd=tmp_path)
    assert outcome.exit_code == 0
    assert alive(os.getpid())
