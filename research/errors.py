from core.errors import DomainError


class ResearchError(DomainError):
    """A research request refused (a digest that is not yours, a filter that cannot be read)."""
