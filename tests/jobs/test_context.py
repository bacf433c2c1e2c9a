"""The run context's three faces agree: the protocol bodies are written against (jobs.context), the
worker's implementation (jobs.runner) and the tests' fake (tests/support/run_context.py)."""

import inspect

import pytest

from jobs.context import RunContext
from jobs.runner import WorkerRunContext
from tests.support.run_context import FakeRunContext

pytestmark = pytest.mark.unit

MEMBERS = [name for name in dir(RunContext) if not name.startswith("_")]
ATTRIBUTES = list(RunContext.__annotations__)


def _parameters(member) -> list[tuple[str, object, object]]:
    if isinstance(member, property):
        return [("property", None, None)]
    return [(p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()]


@pytest.mark.parametrize("implementation", [WorkerRunContext, FakeRunContext])
def test_every_member_of_the_protocol_is_implemented_with_the_same_parameters(implementation):
    assert MEMBERS, "the protocol names its members"
    for name in MEMBERS:
        assert hasattr(implementation, name), f"{implementation.__name__} lacks {name}"
        assert _parameters(inspect.getattr_static(implementation, name)) == \
            _parameters(inspect.getattr_static(RunContext, name)), f"{implementation.__name__}.{name}"
    for name in ATTRIBUTES:
        assert name in implementation.__dataclass_fields__, f"{implementation.__name__} lacks the field {name}"


def test_instances_are_run_contexts():
    assert isinstance(FakeRunContext(), RunContext)
    assert isinstance(WorkerRunContext(id="r", attempt=1, max_attempts=1, correlation_id=""), RunContext)
