"""The agent's own web API (and the pages built on it): a router over the status server, access
control, and the handlers that read the event history and edit the rules."""
