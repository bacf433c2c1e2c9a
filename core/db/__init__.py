"""PostgreSQL, with connection errors that say how to start the embedded server."""
