import re

from project.logging import correlation_id_new, correlation_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into logs and headers: accept only a safe, bounded token.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else correlation_id_new()
        request.request_id = request_id
        token = correlation_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            correlation_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
