"""The connection limiters of kalshi_sync (threads) and kalshi_anyio (tasks, both backends), and
the gate the httpx clients hold rate-limited calls at."""

from __future__ import annotations

import functools
import math
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

import kalshi_httpx
from kalshi_anyio import _io as anyio_io
from kalshi_httpx import _gate as gate_module
from kalshi_httpx._gate import AsyncGate, Gate
from kalshi_proto.errors import ConnectTimeout
from kalshi_proto.rest.hold import Hold
from kalshi_sync import _io as sync_io
from tests.helpers.interrupts import count_checkpoints, interrupt_at


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
        had_to_wait = limiter.acquire(time.monotonic() + 5)
        try:
            with lock:
                waited.append(had_to_wait)
                inside += 1
                peak = max(peak, inside)
                if inside == 2:
                    two_inside.set()
            release.wait(5)
            with lock:
                inside -= 1
        finally:
            limiter.release()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert two_inside.wait(5)
    with lock:
        assert len(waited) == 2  # the other two are waiting in acquire()
    release.set()
    for thread in threads:
        thread.join(5)
    assert peak == 2
    assert sorted(waited) == [False, False, True, True]
    # every slot came back: two more are taken at once
    assert limiter.acquire(time.monotonic()) is False
    assert limiter.acquire(time.monotonic()) is False


def test_the_blocking_limiter_waits_no_longer_than_the_deadline() -> None:
    limiter = sync_io.Limiter(1)
    assert limiter.acquire(time.monotonic() + 5) is False
    started = time.monotonic()
    with pytest.raises(ConnectTimeout, match="no connection became free before the timeout"):
        limiter.acquire(started + 0.05)
    assert time.monotonic() - started < 2  # it gave up at its deadline, not at the holder's
    with pytest.raises(ConnectTimeout):
        limiter.acquire(started - 1)  # a deadline already past: no wait at all
    limiter.release()
    assert limiter.acquire(time.monotonic()) is False  # the failed waits took nothing


# The blocking slot queues: kalshi_sync's connection limiter and the blocking httpx client's
# gate, one algorithm written twice (the adapters never import each other).
BLOCKING_QUEUES = pytest.mark.parametrize(
    ("module", "make"),
    [(sync_io, sync_io.Limiter), (gate_module, Gate)],
    ids=["kalshi_sync", "httpx"],
)


@BLOCKING_QUEUES
def test_the_blocking_limiter_serves_waiters_in_arrival_order_and_lets_none_barge_in(
    module: types.ModuleType, make: Callable[[int], sync_io.Limiter | Gate]
) -> None:
    limiter = make(1)
    limiter.acquire(time.monotonic())
    order: list[str] = []

    def one(name: str) -> None:
        assert limiter.acquire(time.monotonic() + 5)  # True, or the gate
        order.append(name)
        time.sleep(0.01)
        limiter.release()

    threads = [threading.Thread(target=one, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # b and c queue up behind a, in this order
    limiter.release()
    # The slot went to "a", the first waiter: a thread that did not wait cannot take it (it
    # could with the free-for-all of a semaphore, and starve the waiters of a busy pool).
    with pytest.raises(ConnectTimeout):
        limiter.acquire(time.monotonic())
    for thread in threads:
        thread.join(5)
    assert order == ["a", "b", "c"]
    limiter.acquire(time.monotonic())  # and the slot is free again


class _Interrupted(BaseException):
    pass


def _take_and_give_back(limiter: sync_io.Limiter | Gate) -> None:
    # As the clients use a limiter: the hold made first, given back in a finally, twice if the
    # first give-back is interrupted as it begins.
    hold = Hold()
    try:
        limiter.acquire(time.monotonic() + 5, hold)
    finally:
        try:
            hold.release()
        except BaseException:
            hold.release()
            raise


def _nothing_held(limiter: sync_io.Limiter | Gate, where: str) -> None:
    assert limiter._free == 1, f"{where}: the slot is lost"
    assert not limiter._waiters, f"{where}: a waiter left in the queue"
    assert not limiter._lock.locked(), f"{where}: the lock left held"


@BLOCKING_QUEUES
@pytest.mark.parametrize("waits", [False, True], ids=["free", "waits"])
def test_an_interrupt_anywhere_in_taking_and_giving_back_a_slot_loses_none(
    module: types.ModuleType, make: Callable[[int], sync_io.Limiter | Gate], waits: bool
) -> None:
    # With "waits", another thread holds the slot and hands it over 5 ms into the wait.
    limiter = make(1)

    def hold_a_while(taken: threading.Event) -> None:
        hold = Hold()
        limiter.acquire(time.monotonic() + 5, hold)
        taken.set()
        time.sleep(0.005)
        hold.release()

    def one_round(action: Callable[[], object]) -> str:
        holder = None
        if waits:
            taken = threading.Event()
            holder = threading.Thread(target=hold_a_while, args=(taken,))
            holder.start()
            assert taken.wait(5)
        try:
            return str(action())
        finally:
            if holder is not None:
                holder.join(5)

    take_and_give_back = functools.partial(_take_and_give_back, limiter)
    total = int(one_round(functools.partial(count_checkpoints, take_and_give_back)))
    assert total > 5
    for point in range(1, total + 1):
        landed = one_round(functools.partial(interrupt_at, point, take_and_give_back))
        _nothing_held(limiter, f"interrupt at checkpoint {point} of {total} ({landed})")


class _InterruptedWait:
    """A lock whose timed wait is interrupted, as a KeyboardInterrupt would interrupt it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1:
            raise _Interrupted
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._lock.release()


@BLOCKING_QUEUES
def test_an_interrupt_anywhere_as_a_slot_is_handed_to_a_waiter_loses_none(
    module: types.ModuleType, make: Callable[[int], sync_io.Limiter | Gate]
) -> None:
    limiter = make(1)
    outcomes: list[str] = []

    def waiter() -> None:
        hold = Hold()
        try:
            limiter.acquire(time.monotonic() + 2, hold)
            outcomes.append("handed")
        except ConnectTimeout:
            outcomes.append("timed out")
        finally:
            hold.release()

    def give_back(hold: Hold) -> None:
        try:
            hold.release()
        except BaseException:
            hold.release()
            raise

    def one_round(action: Callable[[Hold], object]) -> str:
        hold = Hold()
        limiter.acquire(time.monotonic(), hold)
        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 5
        while not limiter._waiters and time.monotonic() < deadline:
            time.sleep(0.001)
        assert limiter._waiters
        try:
            return str(action(hold))
        finally:
            thread.join(5)

    total = int(one_round(lambda hold: count_checkpoints(functools.partial(give_back, hold))))
    assert total > 3
    # From 2: the first checkpoint is give_back's own start, before its try, which the clients'
    # give-back (in the finally itself) does not have.
    for point in range(2, total + 1):
        def interrupt_the_give_back(hold: Hold, at: int = point) -> str:
            return interrupt_at(at, functools.partial(give_back, hold))

        landed = one_round(interrupt_the_give_back)
        where = f"interrupt at checkpoint {point} of {total} ({landed})"
        _nothing_held(limiter, where)
        assert outcomes[-1] == "handed", where


@BLOCKING_QUEUES
def test_a_blocking_waiter_that_is_interrupted_leaves_the_queue(
    module: types.ModuleType, make: Callable[[int], sync_io.Limiter | Gate]
) -> None:
    limiter = make(1)
    limiter.acquire(time.monotonic())
    fake = types.SimpleNamespace(Lock=_InterruptedWait, TIMEOUT_MAX=threading.TIMEOUT_MAX)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "threading", fake)
        with pytest.raises(_Interrupted):
            limiter.acquire(time.monotonic() + 5)
    limiter.release()  # to no one: the interrupted waiter is gone
    limiter.acquire(time.monotonic())
    with pytest.raises(ConnectTimeout):
        limiter.acquire(time.monotonic())  # one slot, held again


@BLOCKING_QUEUES
def test_a_blocking_waiter_handed_a_slot_as_it_is_interrupted_passes_it_on(
    module: types.ModuleType, make: Callable[[int], sync_io.Limiter | Gate]
) -> None:
    limiter = make(1)
    limiter.acquire(time.monotonic())

    class HandedThenInterrupted(_InterruptedWait):
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if timeout != -1:
                limiter.release()  # the holder hands this waiter the slot, then the interrupt
                raise _Interrupted
            return self._lock.acquire(blocking)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            module,
            "threading",
            types.SimpleNamespace(Lock=HandedThenInterrupted, TIMEOUT_MAX=threading.TIMEOUT_MAX),
        )
        with pytest.raises(_Interrupted):
            limiter.acquire(time.monotonic() + 5)
    limiter.acquire(time.monotonic())  # the slot was passed on, not lost


@BLOCKING_QUEUES
def test_a_blocking_waiter_handed_a_slot_as_its_wait_ends_keeps_it(
    module: types.ModuleType, make: Callable[[int], sync_io.Limiter | Gate]
) -> None:
    limiter = make(1)
    limiter.acquire(time.monotonic())

    class HandedAtTheDeadline(_InterruptedWait):
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if timeout != -1:
                limiter.release()  # handed the slot just after the timed wait gave up
                return False
            return self._lock.acquire(blocking)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            module,
            "threading",
            types.SimpleNamespace(Lock=HandedAtTheDeadline, TIMEOUT_MAX=threading.TIMEOUT_MAX),
        )
        assert limiter.acquire(time.monotonic() + 5)  # True, or the gate
    with pytest.raises(ConnectTimeout):
        limiter.acquire(time.monotonic())  # it is held


def test_the_blocking_limiter_without_a_total_never_waits() -> None:
    limiter = sync_io.Limiter(0)
    assert [limiter.acquire(0.0) for _ in range(3)] == [False, False, False]
    limiter.release()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_limiter_serves_waiters_in_arrival_order(backend: str) -> None:
    async def main() -> list[tuple[str, bool]]:
        limiter = anyio_io.Limiter(1)
        order: list[tuple[str, bool]] = []
        release = anyio.Event()

        async def one(name: str) -> None:
            had_to_wait = await limiter.acquire(math.inf)
            try:
                order.append((name, had_to_wait))
                await release.wait()
            finally:
                limiter.release()

        with anyio.fail_after(5):  # a waiter never woken fails instead of hanging
            async with anyio.create_task_group() as group:
                for name in ("a", "b", "c"):
                    group.start_soon(one, name)
                    await anyio.sleep(0.01)  # b and c queue up behind a, in this order
                release.set()
        return order

    assert anyio.run(main, backend=backend) == [("a", False), ("b", True), ("c", True)]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_limiter_waits_no_longer_than_the_deadline(backend: str) -> None:
    async def main() -> None:
        limiter = anyio_io.Limiter(1)
        assert await limiter.acquire(math.inf) is False
        started = time.monotonic()
        with anyio.fail_after(5):
            with pytest.raises(ConnectTimeout, match="no connection became free before the timeout"):
                await limiter.acquire(started + 0.05)
        assert time.monotonic() - started < 2
        limiter.release()
        assert await limiter.acquire(time.monotonic()) is False  # the failed wait took nothing

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_waiter_that_times_out_or_is_cancelled_passes_its_turn_on(backend: str) -> None:
    async def main() -> list[str]:
        limiter = anyio_io.Limiter(1)
        got: list[str] = []
        holding = anyio.Event()
        release = anyio.Event()

        async def holder() -> None:
            await limiter.acquire(math.inf)
            holding.set()
            await release.wait()
            limiter.release()

        async def waiter(name: str, deadline: float, scope: anyio.CancelScope) -> None:
            with scope:
                try:
                    await limiter.acquire(deadline)
                except ConnectTimeout:
                    got.append(f"{name} timed out")
                    return
                got.append(name)
                limiter.release()

        with anyio.fail_after(5):  # a wake-up lost with a waiter that left would hang
            async with anyio.create_task_group() as group:
                group.start_soon(holder)
                await holding.wait()
                doomed = anyio.CancelScope()
                now = time.monotonic()
                group.start_soon(waiter, "doomed", math.inf, doomed)
                group.start_soon(waiter, "hasty", now + 0.02, anyio.CancelScope())
                await anyio.sleep(0.01)
                group.start_soon(waiter, "next", math.inf, anyio.CancelScope())
                await anyio.sleep(0.05)  # hasty's deadline passes
                doomed.cancel()
                await anyio.sleep(0.01)
                release.set()
        return got

    assert anyio.run(main, backend=backend) == ["hasty timed out", "next"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_task_arriving_as_a_slot_frees_queues_behind_the_waiters(backend: str) -> None:
    async def main() -> list[str]:
        limiter = anyio_io.Limiter(1)
        got: list[str] = []

        async def waiter(name: str) -> None:
            await limiter.acquire(math.inf)
            got.append(name)
            limiter.release()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                await limiter.acquire(math.inf)
                group.start_soon(waiter, "queued")
                await anyio.sleep(0.01)
                limiter.release()  # handed to "queued", which has not run yet
                assert await limiter.acquire(math.inf) is True  # it waited: no barging in
                got.append("newcomer")
                limiter.release()
        return got

    assert anyio.run(main, backend=backend) == ["queued", "newcomer"]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_waiter_cancelled_just_after_it_was_handed_a_slot_hands_it_on(backend: str) -> None:
    async def main() -> list[str]:
        limiter = anyio_io.Limiter(1)
        got: list[str] = []
        scopes = {"w": anyio.CancelScope(), "x": anyio.CancelScope()}

        async def waiter(name: str) -> None:
            with scopes[name]:
                await limiter.acquire(math.inf)
                got.append(name)
                limiter.release()

        with anyio.fail_after(5):  # a slot lost with the cancelled waiter would hang x
            async with anyio.create_task_group() as group:
                await limiter.acquire(math.inf)
                group.start_soon(waiter, "w")
                await anyio.sleep(0.01)
                group.start_soon(waiter, "x")
                await anyio.sleep(0.01)
                limiter.release()  # handed to w ...
                scopes["w"].cancel()  # ... which is cancelled before it runs
        assert await limiter.acquire(time.monotonic() + 1) is False  # the slot is free again
        return got

    got = anyio.run(main, backend=backend)
    # On both backends today the wake-up reaches w before the cancellation does, so w uses the
    # slot; were the cancellation first, w would hand it on. Either way x gets it afterwards.
    assert got in (["x"], ["w", "x"])


# ---- the httpx clients' gate for rate-limited calls ------------------------------------------


def test_the_blocking_gate_lets_at_most_its_total_in_and_waits_no_longer_than_the_deadline() -> (
    None
):
    gate = Gate(2)
    assert gate.acquire(math.inf) is False
    assert gate.acquire(time.monotonic() + 5) is False
    started = time.monotonic()
    with pytest.raises(ConnectTimeout, match="no connection became free before the timeout"):
        gate.acquire(started + 0.05)
    assert time.monotonic() - started < 2
    with pytest.raises(ConnectTimeout):
        gate.acquire(started - 1)  # a deadline already past: no wait at all
    handed = threading.Event()

    def waiter() -> None:
        gate.acquire(time.monotonic() + 5)
        handed.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not handed.wait(0.05)
    gate.release()  # the waiting thread gets this slot
    assert handed.wait(5)
    thread.join(5)
    with pytest.raises(ConnectTimeout):
        gate.acquire(time.monotonic())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_gate_lets_at_most_its_total_in_and_waits_no_longer_than_the_deadline(
    backend: str,
) -> None:
    async def main() -> list[str]:
        gate = AsyncGate(1)
        assert await gate.acquire(math.inf) is False
        started = time.monotonic()
        with anyio.fail_after(5):
            with pytest.raises(ConnectTimeout, match="no connection became free before the timeout"):
                await gate.acquire(started + 0.05)
        assert time.monotonic() - started < 2
        order: list[str] = []

        async def one(name: str) -> None:
            await gate.acquire(time.monotonic() + 5)
            order.append(name)
            gate.release()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                for name in ("b", "c"):
                    group.start_soon(one, name)
                    await anyio.sleep(0.01)
                assert order == []  # both wait for the slot "a" holds
                gate.release()
                with pytest.raises(ConnectTimeout):  # handed to "b": no barging in
                    await gate.acquire(time.monotonic())
        return order

    assert anyio.run(main, backend=backend) == ["b", "c"]


@pytest.mark.parametrize(
    ("options", "slots"),
    [
        ({}, 10),
        ({"limits": httpx.Limits(max_connections=3)}, 3),
        ({"limits": httpx.Limits(max_connections=None)}, None),
        ({"http2": True}, None),  # streams share connections: none queues for one
        ({"transport": httpx.MockTransport(lambda request: httpx.Response(200))}, None),
        ({"http_client": httpx.Client()}, None),  # the caller's pool, of unknown size
    ],
    ids=["default", "limits", "no-limit", "http2", "transport", "http_client"],
)
def test_an_httpx_client_gates_rate_limited_calls_when_it_knows_its_pool(
    options: dict[str, Any], slots: int | None
) -> None:
    client = kalshi_httpx.KalshiClient(base_url="http://127.0.0.1:9", rate_limit="basic", **options)
    try:
        assert client._gate_size == slots
        hold = Hold()
        client._claim(time.monotonic() + 1, hold)
        assert hold.held == (slots is not None)
        hold.release()
        assert hold.owner is None
    finally:
        client.close()
        given = options.get("http_client")
        if isinstance(given, httpx.Client):
            given.close()
