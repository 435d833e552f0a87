"""``pipecat-roark serve``: a self-hosted, Roark-compatible backend (the ``[server]`` extra).

It accepts the ingestion protocol (``pipecat_roark.wire``), stores calls in SQLite or
PostgreSQL and audio in a folder or an S3-compatible bucket, stitches recordings, and
answers the Roark REST read subset. It never imports Pipecat.

Entry points, imported from their modules so this package stays light:

- ``pipecat_roark.server.app.create_app(settings)``: the ASGI app.
- ``pipecat_roark.server.embed.ensure_project_key(settings, name)``: a new API key.
- ``pipecat_roark.server.embed.serve_in_background(settings)``: serve on a free port.
- ``pipecat_roark.server.settings.ServerSettings``: the configuration.
"""
