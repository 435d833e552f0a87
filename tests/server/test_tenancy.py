"""A key sees only its own project's calls and agents; another project's ids are 404."""

from __future__ import annotations

from pipecat_roark.server.embed import ensure_project_key

from .harness import Harness, pcm


async def test_a_key_cannot_reach_another_projects_calls(server: Harness) -> None:
    other_key = await ensure_project_key(server.settings, "rival")
    other = Harness(client=server.client, key=other_key, settings=server.settings, app=server.app)
    await other.start("secret-call")
    await other.upload("secret-call", 0, pcm(400))
    await other.end("secret-call")
    secret_id = await other.call_id("secret-call")
    await other.wait_stitched(secret_id)
    secret_agent = (await other.get("/v1/agent")).json()["data"][0]["id"]

    listing = (await server.get("/v1/call", searchText="secret")).json()
    assert listing["data"] == []
    assert listing["pagination"]["total"] == 0
    assert (await server.get("/v1/agent")).json()["data"] == []
    for path in (
        f"/v1/call/{secret_id}",
        f"/v1/call/{secret_id}/transcript",
        f"/v1/call/{secret_id}/pipecat",
        f"/v1/call/{secret_id}/recording",
        f"/v1/agent/{secret_agent}",
        f"/v1/agent/{secret_agent}/prompt-revisions",
    ):
        assert (await server.get(path)).status_code == 404, path
    deleted = await server.client.delete(f"/v1/call/{secret_id}", headers=server.headers)
    assert deleted.status_code == 404
    assert (await other.get(f"/v1/call/{secret_id}")).status_code == 200


async def test_the_same_call_id_in_two_projects_is_two_calls(server: Harness) -> None:
    other_key = await ensure_project_key(server.settings, "rival")
    other = Harness(client=server.client, key=other_key, settings=server.settings, app=server.app)
    await server.start("shared-id", agentId="mine")
    await other.start("shared-id", agentId="theirs")
    await other.end("shared-id", recordingSampleRate=48000)
    await server.end("shared-id", recordingSampleRate=16000)  # no conflict across projects
    mine = await server.call_id("shared-id")
    theirs = await other.call_id("shared-id")
    assert mine != theirs
    assert (await server.details(mine))["agentId"] == "mine"
    assert (await other.details(theirs))["recording"]["sampleRate"] == 48000
