"""Real peers the backend tests talk to: a ``kdiag serve`` process, a recording HTTP server."""
