"""runsim --latency-ms N [--jitter-ms M]: every answer waits as a distant derouter's would, and waits overlap."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from derouter.simulator.server import ConfigError, make_server
from tests.helpers import ROOT, start_simulator, stop_simulator

LATENCY_SECONDS = 0.5
CONCURRENT_CALLS = 8


@pytest.fixture(scope="module")
def distant_simulator(tmp_path_factory):
    """A runsim process started with --latency-ms, as bench/run starts its distant upstream."""
    sim = start_simulator(tmp_path_factory.mktemp("distant") / "state.sqlite3", "sk-ant-distant-account",
                          extra_args=("--latency-ms", str(int(LATENCY_SECONDS * 1000))))
    yield sim
    stop_simulator(sim)


def timed_balance(sim):
    started = time.monotonic()
    response = requests.get(f"{sim.base_url}/balance", headers={"Authorization": f"Bearer {sim.account_key}"},
                            timeout=30)
    response.raise_for_status()
    return time.monotonic() - started


def test_help_documents_latency_and_jitter():
    result = subprocess.run([sys.executable, "manage.py", "runsim", "--help"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert "--latency-ms N" in result.stdout
    assert "--jitter-ms M" in result.stdout


def test_every_answer_waits_the_latency(distant_simulator):
    for _ in range(3):
        assert timed_balance(distant_simulator) >= LATENCY_SECONDS


def test_concurrent_requests_wait_side_by_side_not_in_turn(distant_simulator):
    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT_CALLS) as pool:
        durations = list(pool.map(lambda _: timed_balance(distant_simulator), range(CONCURRENT_CALLS)))
    elapsed = time.monotonic() - started

    assert min(durations) >= LATENCY_SECONDS
    # Served in turn, the eight would need at least 8 x 0.5 s; side by side they need one wait and change.
    assert elapsed < CONCURRENT_CALLS * LATENCY_SECONDS / 2


def test_jitter_varies_the_wait_but_never_below_latency_minus_jitter(tmp_path):
    sim = start_simulator(tmp_path / "state.sqlite3", "sk-ant-jitter-account",
                          extra_args=("--latency-ms", "300", "--jitter-ms", "200"))
    try:
        durations = [timed_balance(sim) for _ in range(5)]
    finally:
        stop_simulator(sim)
    assert min(durations) >= 0.1


@pytest.mark.parametrize("latency_ms, jitter_ms", [(-1, 0), (0, -5), (600_001, 0)])
def test_a_negative_or_absurd_latency_is_refused(tmp_path, latency_ms, jitter_ms):
    with pytest.raises(ConfigError, match="milliseconds"):
        make_server("127.0.0.1", 0, "sk-ant-x", "100", tmp_path / "state.sqlite3", latency_ms=latency_ms,
                    jitter_ms=jitter_ms)


def test_runsim_stops_with_a_clear_message_on_a_negative_latency(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "runsim", "--account-key", "sk-ant-x", "--state",
                             str(tmp_path / "s.sqlite3"), "--latency-ms", "-3"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "--latency-ms must be between 0 and 600000 milliseconds" in result.stderr
