"""The docs hold together: every relative link and anchor resolves, every environment variable the
code reads is in the configuration reference and in .env.example, and the README stays a front page."""

import re
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PAGES = [BASE_DIR / "README.md", BASE_DIR / "bench" / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
CONFIGURATION = BASE_DIR / "docs" / "configuration.md"
# How the code reads a variable: django-environ's `env`, core.configuration's merged mapping, os.environ.
READS = re.compile(r"""(?:\benv(?:\.\w+)?\(|\benv\.get\(|environment\(\)\.get\(|_environment\.get\(|environ\.get\(|"""
                   r"""environ\[|environ\.setdefault\()\s*["']([A-Z][A-Z0-9_]+)["']""")
# Not configuration: the launcher puts the virtualenv's bin first on it.
NOT_SETTINGS = {"PATH"}
# In the reference, but not for a .env: set by the code for a library, or before any .env is read.
NOT_FOR_DOTENV = {"HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "DJANGO_SETTINGS_MODULE", "ENV_FILE", "LOCAL_DIR"}
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")

pytestmark = pytest.mark.unit


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def _variables_read() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in BASE_DIR.rglob("*.py"):
        parts = path.relative_to(BASE_DIR).parts
        if parts[0] in (".venv", ".local", "tests", "bench") or "migrations" in parts:
            continue
        for name in READS.findall(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(BASE_DIR)))
    return {name: where for name, where in found.items() if name not in NOT_SETTINGS}


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not ours to check here
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(BASE_DIR)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(BASE_DIR)}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_is_reached_from_the_contents():
    contents = (BASE_DIR / "docs" / "index.md").read_text()
    for page in (BASE_DIR / "docs").glob("*.md"):
        assert page.name == "index.md" or f"({page.name}" in contents, page.name


def test_every_variable_the_code_reads_is_in_the_reference_with_a_default_and_in_env_example():
    reference = CONFIGURATION.read_text()
    rows = {name: line for line in reference.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}
    example = set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", (BASE_DIR / ".env.example").read_text(), flags=re.M))
    read = _variables_read()
    assert len(read) > 100, "the scan finds the settings"
    missing = {name: sorted(where) for name, where in read.items() if name not in rows}
    assert missing == {}, "read by the code, not in docs/configuration.md"
    for name, row in rows.items():
        default, meaning = (cell.strip() for cell in row.split("|")[2:4])
        assert default and meaning, f"{name}: a default and a meaning"
    assert sorted(set(read) - NOT_FOR_DOTENV - example) == [], "read by the code, not in .env.example"


def test_the_readme_is_a_front_page():
    readme = (BASE_DIR / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    for command in ("make run", "make test"):
        assert command in readme
