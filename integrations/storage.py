"""How a failure of the file storage (S3 or any S3-compatible server) is sorted for a run's retry
policy and for an upload's answer: credentials or a bucket it refuses are this deployment's
configuration (ServiceMisconfigured, naming the setting), a slow or unreachable server may pass
(TransientError). The local file system raises none of these and is left alone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from core.errors import TransientError
from integrations.http import ServiceMisconfigured

# S3's error codes for credentials it does not accept (a HEAD request's answer has no body: its
# code is the bare status), and for a bucket that is not there.
CREDENTIALS_REFUSED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                                 "ExpiredToken", "AuthorizationHeaderMalformed", "InvalidClientTokenId",
                                 "403", "401"})
BUCKET_MISSING = frozenset({"NoSuchBucket"})
# Codes that say "later": S3 asks clients to slow down, or failed on its side.
PASSING = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"})

_CREDENTIAL_SETTINGS = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"


@contextlib.contextmanager
def storage_errors_sorted() -> Iterator[None]:
    """Run a storage call; its refusals come out as ServiceMisconfigured or TransientError."""
    try:
        yield
    except NoCredentialsError:
        raise ServiceMisconfigured(f"The file storage has no credentials: set {_CREDENTIAL_SETTINGS}.",
                                   setting="AWS_ACCESS_KEY_ID")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in CREDENTIALS_REFUSED:
            raise ServiceMisconfigured(f"The file storage rejected the credentials ({code}): set "
                                       f"{_CREDENTIAL_SETTINGS} to a key it accepts.", setting="AWS_ACCESS_KEY_ID")
        if code in BUCKET_MISSING:
            raise ServiceMisconfigured(f"The file storage has no such bucket ({code}): set AWS_STORAGE_BUCKET_NAME "
                                       "to a bucket these credentials can write.", setting="AWS_STORAGE_BUCKET_NAME")
        if code in PASSING:
            raise TransientError(f"the file storage answered {code}")
        raise
    except (BotocoreConnectionError, HTTPClientError) as exc:
        raise TransientError(f"the file storage is unreachable: {type(exc).__name__}")
