"""What every benchmark prints and writes: figures as median and spread, tables, and the
machine and versions they were measured on (``benchmarks/results/<name>.md``)."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

__all__ = [
    "RESULTS_DIR",
    "Report",
    "machine",
    "median",
    "percentile",
    "server_versions",
    "spread",
    "table",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def server_versions(**extra: str) -> dict[str, str]:
    """The versions a backend benchmark ran with: Pipecat, this project, and ``extra``."""
    return {
        "Pipecat": metadata.version("pipecat-ai"),
        "this project": metadata.version("pipecat-call-analytics"),
        **extra,
    }


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Iterable[float], *, digits: int = 1, scale: float = 1.0) -> str:
    """``median (min-max)``, each value times ``scale``."""
    scaled = [value * scale for value in values]
    if not scaled:
        return "—"
    if len(scaled) == 1:
        return f"{scaled[0]:.{digits}f}"
    return f"{median(scaled):.{digits}f} ({min(scaled):.{digits}f}-{max(scaled):.{digits}f})"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    model = _cpuinfo("model name") or platform.processor() or platform.machine()
    memory = _meminfo_gib()
    return (
        f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB, "
        f"{platform.system()} {platform.release()}"
    )


@dataclass
class Report:
    """One benchmark's results page."""

    name: str
    title: str
    summary: str
    command: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    wall_seconds: float | None = None

    def add(self, *blocks: str) -> None:
        self.sections.extend(blocks)

    def markdown(self) -> str:
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        facts = [
            f"- Date: {when}",
            f"- Machine: {machine()}",
            f"- Python: {platform.python_version()} (benchmark driver)",
            *(f"- {name}: {version}" for name, version in self.versions.items()),
            f"- Command: `{self.command}`",
        ]
        if self.wall_seconds is not None:
            facts.append(f"- Took: {self.wall_seconds:.0f} s")
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        facts.append(f"- Load average at the end (1, 5, 15 min): {load}")
        return "\n\n".join([f"# {self.title}", self.summary, "\n".join(facts), *self.sections])

    def publish(self, results_dir: Path = RESULTS_DIR) -> Path:
        """Prints the page and writes it to ``<results_dir>/<name>.md``."""
        text = self.markdown() + "\n"
        sys.stdout.write(text)
        sys.stdout.flush()
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.md"
        path.write_text(text, encoding="utf-8")
        return path


def _cpuinfo(key: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def _meminfo_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return math.nan
