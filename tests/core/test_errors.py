"""The error vocabulary: one code per kind of refusal, each with its HTTP status."""

from core.errors import CODE_BY_STATUS, DomainError, ErrorCode


def test_each_code_has_one_status_and_each_status_one_code():
    assert DomainError("no").http_status == 400 and DomainError("no").code is ErrorCode.INVALID
    assert DomainError("gone", code=ErrorCode.NOT_FOUND).http_status == 404
    assert DomainError("slow down", code="throttled").code is ErrorCode.THROTTLED
    assert all(CODE_BY_STATUS[code.http_status] is code for code in CODE_BY_STATUS.values())
    assert ErrorCode.UNAVAILABLE.http_status == 503 and ErrorCode.TOO_LARGE.http_status == 413
