"""`kalshi_httpx._body`: reading a reply within the attempt's deadline, without a network."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest

from kalshi_httpx._body import aread_reply, read_reply
from kalshi_proto.errors import ReadError, ReadTimeout


class Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body stream of fixed chunks, as a transport hands it over."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False
        self.taken = 0  # chunks handed to the reader

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.taken += 1
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.taken += 1
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


def reply(stream: Chunks, *headers: tuple[str, str]) -> httpx.Response:
    return httpx.Response(200, headers=headers, stream=stream)


POOL = "the pool"  # what a reader is told its response came from, reported back if lost


def not_lost(pool: str) -> None:
    """The ``lost`` callback of a read whose close must not fail."""
    raise AssertionError("the reader reported a failed close")


class FailingClose(Chunks):
    """A body whose close fails part-way, as httpcore's can (see `kalshi_httpx._body`)."""

    def __init__(self, failure: BaseException, *chunks: bytes) -> None:
        super().__init__(*chunks)
        self.failure = failure

    def close(self) -> None:
        raise self.failure

    async def aclose(self) -> None:
        raise self.failure


@pytest.mark.parametrize("backend", [None, "asyncio", "trio"])
@pytest.mark.parametrize(
    ("failure", "reported"),
    [
        (OSError("reset"), [POOL]),
        (ReadTimeout("late"), [POOL]),
        (KeyboardInterrupt(), []),  # the client replaces the pool on a Ctrl-C anywhere
    ],
)
def test_a_close_that_fails_is_reported_then_raised(
    backend: str | None, failure: BaseException, reported: list[str]
) -> None:
    # The pool may have lost the connection: the client replaces the pool, which ``lost`` is
    # told. The failure still reaches the caller, whatever it is.
    stream = FailingClose(failure, b'{"a":1}')
    lost: list[str] = []
    deadline = time.monotonic() + 60

    async def sending() -> httpx.Response:
        return reply(stream)

    with pytest.raises(type(failure)):
        if backend is None:
            read_reply(reply(stream), deadline, lost.append, POOL)
        else:
            anyio.run(
                lambda: aread_reply(sending(), deadline, lost.append, POOL),
                backend=backend,
            )
    assert lost == reported


def test_a_body_whose_last_chunk_came_after_the_deadline_is_kept() -> None:
    # The body was complete by its Content-Length: giving it up would throw away an answer
    # that arrived.
    stream = Chunks(b'{"a":', b"1}")
    _, body = read_reply(reply(stream), deadline=time.monotonic() + 60, lost=not_lost, pool=POOL)
    assert body == b'{"a":1}'
    late = Chunks(b'{"a":1}')  # came whole, after the deadline
    _, body = read_reply(
        reply(late, ("Content-Length", "7")),
        deadline=time.monotonic() - 1,
        lost=not_lost,
        pool=POOL,
    )
    assert body == b'{"a":1}' and late.closed


@pytest.mark.parametrize("length", [None, "7"])
def test_a_body_still_coming_after_the_deadline_is_a_read_timeout_at_once(
    length: str | None,
) -> None:
    # At the first late chunk that leaves the body short (or whose length is unknown): no
    # waiting for another chunk, which could take a whole read timeout more.
    stream = Chunks(b'{"a":', b"1}", b"never read")
    headers = () if length is None else (("Content-Length", length),)
    with pytest.raises(ReadTimeout, match="did not finish before the timeout"):
        read_reply(reply(stream, *headers), deadline=time.monotonic() - 1, lost=not_lost, pool=POOL)
    assert stream.closed and stream.taken == 1


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_async_reader_decodes_and_closes(backend: str) -> None:
    stream = Chunks(gzip.compress(b'{"a":1}'))

    async def read() -> bytes:
        async def sending() -> httpx.Response:
            return reply(stream, ("Content-Encoding", "gzip"))

        _, body = await aread_reply(sending(), time.monotonic() + 60, not_lost, POOL)
        return body

    assert anyio.run(read, backend=backend) == b'{"a":1}'
    assert stream.closed


class SlowChunks(Chunks):
    """Chunks with a pause before each."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await anyio.sleep(0.05)
            yield chunk


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_async_body_still_coming_at_the_deadline_is_a_read_timeout(backend: str) -> None:
    stream = SlowChunks(b"{", b'"a"', b":1", b"}")

    async def read() -> None:
        async def sending() -> httpx.Response:
            return reply(stream)

        await aread_reply(sending(), time.monotonic() + 0.08, not_lost, POOL)

    with pytest.raises(ReadTimeout, match="did not finish before the timeout"):
        anyio.run(read, backend=backend)
    assert stream.closed


def test_a_corrupt_gzip_body_is_a_read_error() -> None:
    with pytest.raises(ReadError, match="bad response body"):
        read_reply(
            reply(Chunks(b"not gzip"), ("Content-Encoding", "gzip")),
            time.monotonic() + 60,
            not_lost,
            POOL,
        )


MIB = 1024 * 1024


@pytest.mark.parametrize("backend", [None, "asyncio", "trio"])
@pytest.mark.parametrize(
    ("encoding", "message", "chunks_read"),
    [
        ("", "the response body exceeds 67108864 bytes", 65),
        ("gzip", "the encoded response body exceeds 67174400 bytes", 65),
    ],
)
def test_a_body_over_the_limit_is_not_read_to_its_end(
    backend: str | None, encoding: str, message: str, chunks_read: int
) -> None:
    # The other adapters' connections stop at the limit (plus a slack for an encoded body);
    # this reader stopped only after the whole body was in memory.
    stream = Chunks(*[bytes(MIB)] * 100)
    headers = [("Content-Encoding", encoding)] if encoding else []
    deadline = time.monotonic() + 60

    async def sending() -> httpx.Response:
        return reply(stream, *headers)

    with pytest.raises(ReadError) as info:
        if backend is None:
            read_reply(reply(stream, *headers), deadline, not_lost, POOL)
        else:
            anyio.run(lambda: aread_reply(sending(), deadline, not_lost, POOL), backend=backend)
    assert str(info.value) == f"bad response body: {message}"
    assert info.value.final_reason == (
        "the response body is over the limit of 67108864 bytes, and would be again"
    )
    assert stream.taken == chunks_read and stream.closed
