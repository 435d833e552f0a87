"""Getting every request of every call to the backend, exactly once as the backend sees it.

``delivery`` (the ``Delivery`` object: session, queue, lanes, spool, background replay),
``lanes`` (one call's requests in protocol order), ``client`` (the three HTTP requests),
``retry`` (how a request is tried, and the options), ``spool`` (the durable outbox),
``call_lock`` (one owner per spooled call), ``replay`` (sending what the spool holds),
and ``cli`` (``pipecat-roark replay``). Nothing is imported here, so the command line stays light.
"""
