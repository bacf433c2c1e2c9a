import re

from core.logging import correlation_id_new, correlation_id_var

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


class ContentSecurityPolicyMiddleware:
    """Every page may load from this host only (CONTENT_SECURITY_POLICY): the browser itself refuses
    anything else, such as the logo ReDoc's bundle fetches from its vendor's CDN."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
