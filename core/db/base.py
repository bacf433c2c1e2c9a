"""Django's PostgreSQL backend; a refused connection to the embedded server says how to start it."""

from __future__ import annotations

from django.conf import settings
from django.db.backends.postgresql import base

START_HINT = ("No database is reachable at {where}. With DATABASE_URL unset the service uses its embedded "
              "PostgreSQL: start it with `make services` (or `python -m devserver.embedded start`), or run "
              "`make run`; or set DATABASE_URL to your server.")


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except self.Database.OperationalError as exc:
            if not getattr(settings, "EMBEDDED_DATABASE", False):
                raise
            where = f"{conn_params.get('host', '127.0.0.1')}:{conn_params.get('port', '')}"
            raise self.Database.OperationalError(f"{exc}\n{START_HINT.format(where=where)}") from exc
