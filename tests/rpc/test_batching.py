"""The coalescer: batches form under load, single calls go at once, errors stay per item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from specloom.errors import Aborted, Unavailable
from specloom.rpc.batching import Coalescer


class Peer:
    """A batch endpoint that takes its time, records batches, fails items on request."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.batches: list[list[int]] = []

    async def send(self, requests: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(requests))
        await asyncio.sleep(self.delay)
        return [Aborted(f"item {r}") if r < 0 else r * 10 for r in requests]


async def test_a_single_call_goes_alone_and_at_once() -> None:
    peer = Peer(delay=0)
    coalescer: Coalescer[int, int] = Coalescer(peer.send)
    assert await coalescer.call(4) == 40
    assert peer.batches == [[4]]


async def test_calls_of_one_turn_leave_together_and_later_ones_queue() -> None:
    peer = Peer(delay=0.02)
    coalescer: Coalescer[int, int] = Coalescer(peer.send, max_in_flight=1)
    first = await asyncio.gather(*(coalescer.call(n) for n in range(5)))
    assert first == [0, 10, 20, 30, 40]
    assert peer.batches == [[0, 1, 2, 3, 4]]

    async def later(n: int) -> int:
        await asyncio.sleep(0.005 * (n % 3))
        return await coalescer.call(n)

    peer.batches.clear()
    results = await asyncio.gather(*(later(n) for n in range(30)))
    assert results == [n * 10 for n in range(30)]
    # One batch was in flight while the rest arrived: they left together.
    assert len(peer.batches) < 30
    assert sorted(n for batch in peer.batches for n in batch) == list(range(30))


async def test_item_errors_stay_with_their_item() -> None:
    coalescer: Coalescer[int, int] = Coalescer(Peer().send)
    ok, refused = await asyncio.gather(
        coalescer.call(2), coalescer.call(-1), return_exceptions=True
    )
    assert ok == 20
    assert isinstance(refused, Aborted)


async def test_a_failed_batch_fails_each_of_its_callers() -> None:
    async def down(requests: list[int]) -> Sequence[int | BaseException]:
        raise Unavailable("peer is down")

    coalescer: Coalescer[int, int] = Coalescer(down)
    outcomes = await asyncio.gather(*(coalescer.call(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)


async def test_the_batch_size_is_capped() -> None:
    peer = Peer(delay=0.001)
    coalescer: Coalescer[int, int] = Coalescer(peer.send, max_batch=4, max_in_flight=1)
    await asyncio.gather(*(coalescer.call(n) for n in range(10)))
    assert [len(b) for b in peer.batches] == [4, 4, 2]


async def test_a_caller_that_gives_up_does_not_break_the_batch() -> None:
    peer = Peer(delay=0.05)
    coalescer: Coalescer[int, int] = Coalescer(peer.send)
    impatient = asyncio.ensure_future(coalescer.call(1))
    patient = asyncio.ensure_future(coalescer.call(2))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert await patient == 20
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_batch_is_bounded_in_bytes_and_a_large_call_goes_alone() -> None:
    peer = Peer(delay=0.001)
    coalescer: Coalescer[int, int] = Coalescer(
        peer.send, max_in_flight=1, size=lambda n: n, max_batch_bytes=100
    )
    sizes = [40, 40, 40, 250, 10, 60, 30]
    results = await asyncio.gather(*(coalescer.call(n) for n in sizes))
    assert results == [n * 10 for n in sizes]
    # Each batch holds at most 100 bytes of requests; 250 is over the budget
    # on its own and leaves alone rather than being refused.
    assert peer.batches == [[40, 40], [40], [250], [10, 60, 30]]
