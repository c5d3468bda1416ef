"""The README's main job runs end to end against the local exchange, on both anyio backends."""

from __future__ import annotations

import pytest

from kalshi_anyio.demo import run_demo


@pytest.mark.anyio
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_demo_transcript(tls: bool) -> None:
    lines = await run_demo(tls=tls, out=[])
    text = "\n".join(lines)
    assert "Exchange active: True, trading active: True" in text
    assert "Bid 10 @ 0.50 (rests below the ask): filled 0.00, resting 10.00" in text
    assert "IOC bid 5 @ 0.57 (crosses the ask): filled 5.00 at 0.5600, fee 0.0173 per contract" in text
    assert "Amended the resting bid to 12 @ 0.51: resting 12.00" in text
    assert "Cancelled it: 12.00 contracts taken off the book" in text
    assert "KXBTCD-26JAN3017-T100000: 5.00 contracts, exposure $2.8000, fees $0.0863" in text
    # 10,000 - 5 * 0.56 - 0.0863 fee
    assert "Balance: $9997.1137" in text
    assert "Every open market via list_all, 5 per page: 12 markets" in text
