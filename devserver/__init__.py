"""What `make run`, `make test` and start_workers.sh start: the embedded PostgreSQL and Redis, the
launcher, and the supervisor of the Celery processes. Django never imports this package."""
