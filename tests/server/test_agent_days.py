"""Each agent's ended calls summed per UTC day (``agent_days``), kept at ingest so that an
agent's trends read a row per day: after every step of calls that end before they start,
end by inactivity and then send call-ended for another day, repeat call-ended, carry no
metrics, have no agent or are deleted, the rows equal sums made here from the calls
themselves, on SQLite and on PostgreSQL; the trends read no call; ``rebuild`` and the
migration make the same rows from stored calls."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select

from pipecat_roark.server import schema
from pipecat_roark.server.agent_days import rebuild
from pipecat_roark.server.calls import finalise_inactive
from pipecat_roark.server.durations import unpacked
from tests.support.migrations import NOW, old_database

from .harness import Harness
from .plans import statements_run

Sums = dict[tuple[str, date], tuple[int, int, int, int, list[str]]]


def _metrics(*latencies: float, cuts: int = 0) -> list[dict[str, Any]]:
    entries = [{"kind": "turn_latency", "value": v, "audioOffsetMs": 1000} for v in latencies]
    return entries + [{"kind": "interruption", "value": 0.3, "audioOffsetMs": 2000}] * cuts


def _on(day: str) -> dict[str, str]:
    return {"callStartedAt": f"{day}T10:00:00+00:00", "callEndedAt": f"{day}T10:05:00+00:00"}


async def _from_calls(server: Harness) -> Sums:
    """Each (agent, day)'s sums, made here from the ended calls' stored figures."""
    c = schema.calls.c
    started = func.coalesce(c.started_at, c.created_at, type_=schema.UTCDateTime())
    query = select(
        c.agent_id, started, c.response_latencies, c.interruption_count, c.assistant_turn_count
    ).where(c.status == "ENDED", c.agent_id.is_not(None))
    sums: dict[tuple[str, date], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, []])
    async with server.state.reader.connect() as connection:
        for agent, at, latencies, cuts, turns in await connection.execute(query):
            entry = sums[agent, at.astimezone(timezone.utc).date()]
            entry[0] += 1
            if latencies is not None:
                entry[1] += 1
                entry[2] += cuts or 0
                entry[3] += turns or 0
                entry[4] += [float(v) for v in latencies]
    return {key: (a, b, c_, d, sorted(e)) for key, (a, b, c_, d, e) in sums.items()}


async def _kept(server: Harness) -> Sums:
    d = schema.agent_days.c
    query = select(
        d.agent_id, d.day, d.calls, d.calls_with_metrics, d.interruptions, d.assistant_turns,
        d.latencies,
    )  # fmt: skip
    async with server.state.reader.connect() as connection:
        return {
            (agent, day): (calls, metered, cuts, turns, sorted(unpacked([kept]).tolist()))
            for agent, day, calls, metered, cuts, turns, kept in await connection.execute(query)
        }


async def _same(server: Harness) -> Sums:
    kept = await _kept(server)
    assert kept == await _from_calls(server)
    return kept


async def test_the_days_follow_every_way_a_call_counts(server: Harness) -> None:
    # Started, then ended with metrics.
    await server.start("a", agentId="days")
    await server.end("a", metrics=_metrics(0.5, 1.25, cuts=1), **_on("2026-03-01"))
    kept = await _same(server)
    assert [entry[0] for entry in kept.values()] == [1]
    # A repeat of call-ended changes nothing.
    await server.end("a", metrics=_metrics(0.5, 1.25, cuts=1), **_on("2026-03-01"))
    assert await _same(server) == kept
    # Ended first, without an agent: not counted until call-started names one.
    await server.end("b", metrics=_metrics(0.5), **_on("2026-03-01"))
    assert await _same(server) == kept
    await server.start("b", agentId="days")
    kept = await _same(server)
    assert [entry[0] for entry in kept.values()] == [2]
    # Ended by inactivity (a call, no figures), then its late call-ended, of another day.
    await server.start("c", agentId="days")
    silent = await server.call_id("c")
    async with server.state.begin() as connection:
        assert silent in await finalise_inactive(connection, 0)
    kept = await _same(server)  # on the day call-started gave it (the harness's T0)
    assert sorted(entry[:2] for entry in kept.values()) == [(1, 0), (2, 2)]
    await server.end("c", metrics=_metrics(2.0, cuts=2), **_on("2026-03-02"))
    kept = await _same(server)
    assert sorted(entry[:2] for entry in kept.values()) == [(1, 1), (2, 2)]
    # Without metrics, and without an agent at all.
    await server.start("d", agentId="days")
    await server.end("d", **_on("2026-03-02"))
    await server.end("nobody", metrics=_metrics(9.0), **_on("2026-03-02"))
    kept = await _same(server)
    assert sorted(entry[:2] for entry in kept.values()) == [(2, 1), (2, 2)]
    # Deleted: its values go, another call's equal value stays.
    deleted = await server.call_id("b")
    answer = await server.client.delete(f"/v1/call/{deleted}", headers=server.headers)
    assert answer.status_code in (200, 204), answer.text
    kept = await _same(server)
    assert kept[next(k for k in kept if k[1] == date(2026, 3, 1))][4] == [0.5, 1.25]
    # The last call of a day deleted: the day's row goes.
    for name in ("a", "c", "d"):
        answer = await server.client.delete(
            f"/v1/call/{await server.call_id(name)}", headers=server.headers
        )
        assert answer.status_code in (200, 204), answer.text
    assert await _same(server) == {}


async def test_the_trends_read_the_days_not_the_calls_and_rebuild_makes_them_again(
    server: Harness,
) -> None:
    for number in range(6):
        await server.start(f"t-{number}", agentId="trend")
        day = f"2026-03-0{1 + number % 3}"
        metrics = _metrics(0.25 * (number + 1), cuts=number % 2) if number != 4 else None
        extra = {"metrics": metrics} if metrics is not None else {}
        await server.end(f"t-{number}", **extra, **_on(day))
    kept = await _same(server)
    agent = (await server.get("/v1/agent")).json()["data"][0]["id"]
    with statements_run(server, lambda s: "response_latencies" in s) as reads:
        answer = await server.get(f"/v1/agent/{agent}/analytics", **{"from": "2026-03-01"})
    assert answer.status_code == 200, answer.text
    assert reads == []  # no call's figures read
    days = answer.json()["data"]["days"]
    assert [d["calls"] for d in days[:4]] == [2, 2, 2, 0]
    async with server.state.begin() as connection:
        await connection.execute(sa.delete(schema.agent_days))
        assert await connection.run_sync(rebuild) == 6
    assert await _same(server) == kept


def test_calls_stored_before_the_days_existed_are_summed_on_upgrade(tmp_path: Path) -> None:
    with old_database(tmp_path / "old.sqlite3", "0014") as old:
        old.connection.execute(
            sa.text("INSERT INTO agents VALUES ('a', 'p', 'a', NULL, :now, :now, 2)"),
            {"now": NOW},
        )
        for number, (status, latencies) in enumerate(
            (("ENDED", "[0.5, 1.5]"), ("ENDED", None), ("IN_PROGRESS", None))
        ):
            old.connection.execute(
                sa.text(
                    "INSERT INTO calls (id, project_id, pipecat_call_id, agent_id, status, "
                    "started_received, ended_received, stitch_count, created_at, updated_at, "
                    "last_activity_at, started_at, response_latencies, interruption_count, "
                    f"assistant_turn_count) VALUES ('c{number}', 'p', 'old-{number}', 'a', "
                    f"'{status}', 1, 1, 0, :now, :now, :now, :now, :latencies, 1, 3)"
                ),
                {"now": NOW, "latencies": latencies},
            )
        old.upgrade()
        rows = old.connection.execute(sa.text("SELECT * FROM agent_days")).all()
        assert [tuple(row)[2:-1] for row in rows] == [("2026-01-01", 2, 1, 1, 3)]
        assert unpacked([rows[0].latencies]).tolist() == [0.5, 1.5]
        old.downgrade("0016")  # the latencies as that revision kept them
        rows = old.connection.execute(sa.text("SELECT * FROM agent_days")).all()
        assert [tuple(row)[2:] for row in rows] == [("2026-01-01", 2, 1, 1, 3, "0.5,1.5")]
        old.downgrade("0014")  # and back: the table goes
        tables = old.connection.execute(sa.text("SELECT name FROM sqlite_master"))
        assert "agent_days" not in [row[0] for row in tables]


async def test_a_call_in_progress_is_not_read_again_to_count_it(server: Harness) -> None:
    """The usual order (call-started, then call-ended) reads nothing for the days or the
    search index beyond what the request itself stores: on SQLite each statement of a write
    is time every other writer waits, and a burst of calls starting is all writes."""

    def ingest_reads(statement: str) -> bool:
        """Reads of a call's figures (to count it), of the index, or of its text."""
        read = statement.lstrip().upper().startswith("SELECT")
        looked_for = ("response_latencies", "call_search", "transcript_text")
        return read and any(name in statement for name in looked_for)

    with statements_run(server, ingest_reads) as reads:
        await server.start("e", agentId="days")
        assert reads == []
        await server.end("e", metrics=_metrics(0.5, 1.25), **_on("2026-03-01"))
    # call-ended reads the call's figures once, to add them to its day; its text is in hand.
    (figures,) = reads
    assert "call_search" not in figures[0]
    assert "transcript_text" not in figures[0]
    assert [entry[0] for entry in (await _same(server)).values()] == [1]
