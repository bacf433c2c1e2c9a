"""The Django cache's Redis serializer: JSON, never pickle.

Django's default pickles values, so anyone who can write a key in Redis could run code in every
process that reads it. JSON reads data, nothing else; a value that is not JSON reads as missing.
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger(__name__)


class JsonSerializer:
    def dumps(self, obj):
        # Plain integers stay integers so that incr() and decr() work in Redis itself.
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data):
        try:
            return int(data)
        except ValueError:
            pass
        try:
            return json.loads(data)
        except ValueError:
            logger.warning("cache value is not JSON; treated as missing")
            return None
