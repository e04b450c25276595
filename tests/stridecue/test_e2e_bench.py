"""`stridecue bench e2e` measures what it says: every cue it feeds is found on the coach page.

A short run (one athlete) against the machine's Mosquitto and Debian's chromium; the
figures themselves are the bench's to report, not a test's to time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bus.settings import BrokerConfig
from stridecue.bench.e2e import CHROMIUM, run_e2e_bench

pytestmark = [pytest.mark.mosquitto, pytest.mark.browser]


def test_every_cue_fed_is_seen_on_the_coach_page(
    system_mosquitto: BrokerConfig,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no browser at {CHROMIUM}")
    figures = asyncio.run(run_e2e_bench(system_mosquitto, athletes=[], stream_s=20.0))
    assert figures["cues_sent_1_athlete"] >= 3
    assert figures["cues_lost"] == 0
    # The promise for the coach page: within 2 s of the sample.
    assert figures["browser_cue_latency_p99_ms"] < 2000
    assert figures["cpu_percent_1_athlete"] > 0
