"""PostgreSQL whose silence costs a request under a second, with connection errors that say how to
start the embedded server."""
