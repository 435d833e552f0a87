"""Every benchmark runs at tiny sizes, prints its table and writes its results page.

Only that: timings are the benchmarks' own output (``scripts/bench``), never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each page must show besides its table: the rows that prove the benchmark measured.
EXPECTED = {
    "observer_cost": ["| no observer |", "| **this project** |", "backend never answers", "1/1"],
    "observer_instructions": [
        "| no observer |",
        "| **this project** |",
        "1/1 calls complete",
        "moved between rounds",
    ],
    "long_call_memory": ["| minute | RSS MB |", "### tracemalloc", "Growth from minute"],
    "end_of_call": ["| this project |", "all complete", "p95"],
    "ingest_load": [
        "## Highest N held",
        "### SQLite + folder, 1 replica, 16x",
        "### PostgreSQL + S3 (SeaweedFS), 2 replicas, 16x",
        "### PostgreSQL + S3 (SeaweedFS), 2 replicas, real time",
        "real-time calls on PostgreSQL + S3 (SeaweedFS), 2 replicas",
        "SeaweedFS CPU %",
        "replica /healthz p99 ms",
        "PostgreSQL sessions busy",
        "| 4 |",
    ],
    "stitching": ["audio per CPU second", "peak RSS growth MB", "tracemalloc peak MB"],
    "event_bursts": [
        "| SQLite + folder, 1 replica | call-started |",
        "| PostgreSQL + S3 (SeaweedFS), 2 replicas | call-ended |",
        "waiting for a lock",
    ],
    "request_cost": [
        "| SQLite + folder, 1 replica | healthz |",
        "| SQLite + folder, 1 replica | chunk upload URL |",
        "**a real-time call**",
    ],
    "spool_cost": ["| records already spooled |", "replay µs/record", "Ratio large/small"],
    "outage_memory": ["RSS growth, peak", "**100%**", "0 duplicate(s)", "everything delivered"],
    "search_scale": [
        "| SQLite | a quoted phrase |",
        "| PostgreSQL | a pipecatCallId |",
        "equals a scan in Python over the generated calls: yes",
    ],
    "voice_pipeline_cost": [
        "| no observer |",
        "| Pipecat's recorder alone, no observer |",
        "| **this project** |",
        "1/1 calls complete",
        "floor of any observer",
    ],
    "latency_attribution": ["| daily analytics (baseline) |", "| attribution, two weeks |", "Goal"],
    "pages_at_scale": [
        "| calls list, newest |",
        "| agent page (30 days) |",
        "| GET /v1/call sortBy=endedAt |",
        "### PostgreSQL + S3 (SeaweedFS), 1 replica",
        "Goal p95",
    ],
    "dashboard_pages": [
        "| calls list (HTML, first 50) |",
        "call page (HTML)",
        "waveform peaks",
        "0 errors",
    ],
}


def run_smoke(name: str, results: Path) -> subprocess.CompletedProcess[str]:
    # Only this project's venv: the comparison venvs are scripts/bench's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROARK_BENCH_")}
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--smoke", "--results", str(results)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_prints_its_table_and_writes_its_results(name: str, tmp_path: Path) -> None:
    done = run_smoke(name, tmp_path)

    assert done.returncode == 0, done.stderr[-4000:]
    page = (tmp_path / f"{name}.md").read_text(encoding="utf-8")
    assert page.strip() in done.stdout
    for fact in ("Machine:", "Python:", "Pipecat", "Date:"):
        assert fact in page
    assert "|---|" in page
    for expected in EXPECTED[name]:
        assert expected in page, f"{expected!r} missing from:\n{page}"
