"""What call-started runs inside its write transaction, when the call is new and its agent
and prompt are known (nearly every call): on SQLite every statement there is time each other
writer waits, so a burst of calls starting queues behind them."""

from __future__ import annotations

from sqlalchemy import select

from pipecat_roark.server import schema

from .harness import Harness
from .plans import statements_run


async def test_an_agent_and_prompt_seen_before_are_read_not_written(server: Harness) -> None:
    """Nearly every call-started names an agent and prompt the server knows: one read each,
    and the call's own row read once with what the event needs."""
    await server.start("f", agentId="known", agentName="Known", agentPrompt="Be brief.")
    with statements_run(server, lambda statement: True) as run:
        await server.start("g", agentId="known", agentName="Known", agentPrompt="Be brief.")
    # Only their call counts change (agent_counts).
    inserted = [s for s, _ in run if s.lstrip().upper().startswith("INSERT")]
    assert [s.split()[2] for s in inserted] == ["calls"]
    updated = [s.split()[1] for s, _ in run if s.lstrip().upper().startswith("UPDATE")]
    assert sorted(updated) == ["agent_prompts", "agents", "calls"]
    reads_of_the_call = [s for s, _ in run if s.lstrip().upper().startswith("SELECT")]
    assert sum("calls.ingest_warnings" in s for s in reads_of_the_call) == 1
    # A new name renames the agent.
    await server.start("h", agentId="known", agentName="Renamed", agentPrompt="Be brief.")
    async with server.state.reader.connect() as connection:
        names = await connection.scalars(
            select(schema.agents.c.name).where(schema.agents.c.custom_id == "known")
        )
        assert list(names) == ["Renamed"]
