from core.errors import DomainError


class DocumentsError(DomainError):
    """A document request refused (bad upload, unknown document), or a document that cannot be processed."""
