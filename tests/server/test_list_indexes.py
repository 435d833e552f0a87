"""Each sort of the dashboard's calls list reads its page off an index, either way round,
on SQLite and on PostgreSQL: its plan never sorts every call of the project. (What each
order returns is checked in tests/dashboard/test_list_sorting.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from pipecat_roark.server.dashboard.listing import SORTS

from .harness import Harness
from .plans import query_plan, sorts_every_row, statements_run


async def _page_statement(server: Harness, **params: str) -> tuple[str, Any, list[str]]:
    """The page's statement (the one that orders the calls), and the page's call ids."""
    with statements_run(server, lambda s: "ORDER BY" in s and "snippet" in s) as statements:
        answer = await server.get("/calls.json", limit="4", **params)
    assert answer.status_code == 200, answer.text
    assert len(statements) == 1, statements
    ((statement, parameters),) = statements
    return statement, parameters, [row["pipecatCallId"] for row in answer.json()["data"]]


# Each order of the calls below: the one without metrics last both ways round.
_ORDERS = {
    "duration": {"desc": [3, 2, 1, 0], "asc": [0, 1, 2, 3]},
    "latency": {"desc": [2, 1, 0, 3], "asc": [0, 1, 2, 3]},
    "interruptions": {"desc": [2, 1, 0, 3], "asc": [0, 1, 2, 3]},
}
EXPECTED = {
    sort: {order: [f"sorted-{n}" for n in numbers] for order, numbers in orders.items()}
    for sort, orders in _ORDERS.items()
}


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_each_sort_reads_an_index_either_way_round(server: Harness, order: str) -> None:
    for number in range(4):
        await server.start(f"sorted-{number}")
        ended: dict[str, Any] = {"callEndedAt": f"2026-01-01T12:0{number + 1}:30+00:00"}
        if number < 3:  # the last call sends no metrics: no latency or interruption figures
            ended["metrics"] = [
                {"kind": "turn_latency", "value": 0.5 + number, "audioOffsetMs": 1000}
            ] + [{"kind": "interruption", "value": 0.2, "audioOffsetMs": 2000}] * number
        assert (await server.end(f"sorted-{number}", **ended)).status_code == 200
    for sort in SORTS:
        statement, parameters, listed = await _page_statement(server, sort=sort, order=order)
        if sort in EXPECTED:  # (every call started at the same time: ties go by id)
            assert listed == EXPECTED[sort][order], (sort, order)
        plan = await query_plan(server, statement, parameters)
        print(sort, order, " | ".join(plan))
        assert not sorts_every_row(plan), (sort, order, " | ".join(plan))
