"""One configuration for every command: the process's environment over `.env`, then defaults."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.configuration import dotenv_read, environment, value_sources
from tests.support.worker import BASE_DIR, child_env

DOTENV = """# a comment
export AI_MODEL=gpt-test
AI_API_KEY='sk-quoted key'
AI_APOLOGY_TEXT="Sorry, \\"really\\""
DEFAULT_CONCURRENCY=3
"""


@pytest.mark.unit
def test_a_dotenv_is_read_with_quotes_export_and_comments(tmp_path):
    path = tmp_path / ".env"
    path.write_text(DOTENV)
    assert dotenv_read(path) == {"AI_MODEL": "gpt-test", "AI_API_KEY": "sk-quoted key",
                                 "AI_APOLOGY_TEXT": 'Sorry, "really"', "DEFAULT_CONCURRENCY": "3"}
    assert dotenv_read(tmp_path / "missing") == {} and dotenv_read(None) == {}


@pytest.mark.unit
def test_the_process_environment_wins_over_the_file_and_an_empty_env_file_reads_none(tmp_path):
    path = tmp_path / ".env"
    path.write_text(DOTENV)
    process = {"ENV_FILE": str(path), "AI_MODEL": "from-the-process"}
    merged = environment(process_environ=process)
    assert merged["AI_MODEL"] == "from-the-process" and merged["AI_API_KEY"] == "sk-quoted key"
    assert value_sources(["AI_MODEL", "AI_API_KEY", "AI_SERVER_URL"], process_environ=process) == {
        "AI_MODEL": "environment", "AI_API_KEY": str(path), "AI_SERVER_URL": "default"}
    assert "AI_API_KEY" not in environment(process_environ={"ENV_FILE": ""})


def _run(args: list[str], env_file: Path, **extra: str) -> subprocess.CompletedProcess:
    env = child_env(ENV_FILE=str(env_file), **extra)
    for name in ("AI_SERVER_URL", "AI_API_KEY", "AI_MODEL", "DEFAULT_CONCURRENCY", "PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.django_db
def test_a_gateway_in_dotenv_configures_manage_py_health_and_shell_alike(tmp_path, fake_llm):
    """The gateway's URL and key in `.env` alone: health probes it (not "not_configured") and says
    the values came from the file; the shell's settings hold them."""
    fake_llm.reset()
    fake_llm.proxy_key = "sk-gateway"
    env_file = tmp_path / ".env"
    env_file.write_text(f"AI_SERVER_URL={fake_llm.url}\nAI_API_KEY=sk-gateway\nAI_MODEL=gateway-model\n")

    health = _run(["manage.py", "health"], env_file)
    report = json.loads(health.stdout)
    assert report["checks"]["ai_server"]["status"] == "ok", health.stderr[-2000:]
    assert report["configuration"]["env_file"] == str(env_file)
    assert report["configuration"]["sources"]["AI_SERVER_URL"] == str(env_file)
    assert report["configuration"]["sources"]["AI_API_KEY"] == str(env_file)
    assert "sk-gateway" not in health.stdout

    shell = _run(["manage.py", "shell", "-c",
                  "from django.conf import settings; print(settings.AI_SERVER_URL, settings.AI_MODEL)"], env_file)
    assert shell.stdout.splitlines()[-1].split() == [fake_llm.url, "gateway-model"], shell.stderr[-2000:]

    env_file.write_text(f"AI_SERVER_URL={fake_llm.url}\nAI_API_KEY=sk-wrong\n")
    rejected = json.loads(_run(["manage.py", "health"], env_file).stdout)["checks"]["ai_server"]
    assert rejected["status"] == "error" and "rejected the API key" in rejected["detail"]


@pytest.mark.integration
def test_the_processes_make_run_and_start_workers_start_read_dotenv(tmp_path):
    """The launcher and start_workers.sh hand every program environment(): the workers' concurrency
    and gunicorn's port come from `.env` as from the environment."""
    env_file = tmp_path / ".env"
    env_file.write_text("DEFAULT_CONCURRENCY=3\nPORT=8123\n")
    code = ("from processes.workers import worker_programs; import project.gunicorn_conf as g; "
            "argv = [p.argv for p in worker_programs(beat=False) if p.name == 'worker default'][0]; "
            "print(argv[argv.index('-c') + 1], g.bind)")
    result = _run(["-c", code], env_file)
    assert result.stdout.split() == ["3", "127.0.0.1:8123"], result.stderr[-2000:]
