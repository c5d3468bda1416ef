"""The connection limiters of kalshi_sync (threads) and kalshi_anyio (tasks, both backends)."""

from __future__ import annotations

import threading

import anyio
import pytest

from kalshi_anyio import _io as anyio_io
from kalshi_sync import _io as sync_io


def test_the_blocking_limiter_lets_at_most_its_total_in_and_says_who_waited() -> None:
    limiter = sync_io.Limiter(2)
    inside = 0
    peak = 0
    waited: list[bool] = []
    lock = threading.Lock()
    release = threading.Event()
    two_inside = threading.Event()

    def worker() -> None:
        nonlocal inside, peak
        with limiter.hold() as had_to_wait:
            with lock:
                waited.append(had_to_wait)
                inside += 1
                peak = max(peak, inside)
                if inside == 2:
                    two_inside.set()
            release.wait(5)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert two_inside.wait(5)
    with lock:
        assert len(waited) == 2  # the other two are blocked in hold()
    release.set()
    for thread in threads:
        thread.join(5)
    assert peak == 2
    assert sorted(waited) == [False, False, True, True]

    both_free = threading.Event()

    def again() -> None:  # in a thread, so a slot that never came back fails instead of hanging
        with limiter.hold() as first, limiter.hold() as second:
            if (first, second) == (False, False):
                both_free.set()

    threading.Thread(target=again, daemon=True).start()
    assert both_free.wait(5), "a slot was not given back"


def test_the_blocking_limiter_without_a_total_never_waits() -> None:
    limiter = sync_io.Limiter(0)
    with limiter.hold() as first, limiter.hold() as second, limiter.hold() as third:
        assert (first, second, third) == (False, False, False)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_limiter_serves_waiters_in_arrival_order(backend: str) -> None:
    async def main() -> list[tuple[str, bool]]:
        limiter = anyio_io.Limiter(1)
        order: list[tuple[str, bool]] = []
        release = anyio.Event()

        async def one(name: str) -> None:
            async with limiter.hold() as had_to_wait:
                order.append((name, had_to_wait))
                await release.wait()

        with anyio.fail_after(5):  # a waiter never woken fails instead of hanging
            async with anyio.create_task_group() as group:
                for name in ("a", "b", "c"):
                    group.start_soon(one, name)
                    await anyio.sleep(0.01)  # b and c queue up behind a, in this order
                release.set()
        return order

    assert anyio.run(main, backend=backend) == [("a", False), ("b", True), ("c", True)]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_cancelled_waiter_passes_its_turn_on(backend: str) -> None:
    async def main() -> list[str]:
        limiter = anyio_io.Limiter(1)
        got: list[str] = []
        holding = anyio.Event()
        release = anyio.Event()

        async def holder() -> None:
            async with limiter.hold():
                holding.set()
                await release.wait()

        async def waiter(name: str, scope: anyio.CancelScope | None = None) -> None:
            with scope or anyio.CancelScope():
                async with limiter.hold():
                    got.append(name)

        with anyio.fail_after(5):  # a wake-up lost with the cancelled waiter would hang
            async with anyio.create_task_group() as group:
                group.start_soon(holder)
                await holding.wait()
                doomed = anyio.CancelScope()
                group.start_soon(waiter, "doomed", doomed)
                await anyio.sleep(0.01)
                group.start_soon(waiter, "next")
                await anyio.sleep(0.01)
                doomed.cancel()
                await anyio.sleep(0.01)
                release.set()
        return got

    assert anyio.run(main, backend=backend) == ["next"]
