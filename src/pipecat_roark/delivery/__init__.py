"""Getting every request of every call to the backend, exactly once as the backend sees it.

``client`` (the three HTTP requests), ``retry`` (how a request is tried), ``sender`` (the
background sender and per-call lanes), ``spool`` (the durable outbox), ``replay`` (sending
what the spool holds) and ``cli`` (``pipecat-roark replay``). Nothing is imported here, so
the command line stays light.
"""
