from core.errors import DomainError


class ChatError(DomainError):
    """A chat request refused (empty message, a reply already in progress)."""
