"""What `make run`, `make services` and the tests start on a developer's machine: the embedded
PostgreSQL and Redis, and the launcher that adds the web server to the processes of a deployment
(the `processes` package). Django never imports this package."""
