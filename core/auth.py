from django.db import InterfaceError, OperationalError
from rest_framework.authentication import TokenAuthentication


class TokenOrBearerAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` as DRF has it, and `Bearer <key>` as most clients send."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header[:7].lower() == "bearer ":
            request.META["HTTP_AUTHORIZATION"] = "Token " + header[7:]
        return super().authenticate(request)


def database_optional(authentication_class: type) -> type:
    """The same authentication, where a database that cannot be asked means anonymous: the health
    endpoint still answers then, and says that the database is down."""

    class DatabaseOptional(authentication_class):
        def authenticate(self, request):
            try:
                return super().authenticate(request)
            except (OperationalError, InterfaceError):
                return None

    DatabaseOptional.__name__ = DatabaseOptional.__qualname__ = f"DatabaseOptional{authentication_class.__name__}"
    return DatabaseOptional
