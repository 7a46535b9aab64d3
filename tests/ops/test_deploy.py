"""The deployment files agree with the code: setting names, the command, the body limit."""

from __future__ import annotations

import re
import secrets
import textwrap
from pathlib import Path

import pytest

from config import SECRET_NAMES, SETTING_NAMES, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY_FILES = sorted(p for p in (REPO / "deploy").rglob("*") if p.is_file())
NAME = re.compile(r"TORCHGATE_[A-Z0-9_]*[A-Z0-9]")


def gunicorn_names() -> set[str]:
    """TORCHGATE_* names gunicorn.conf.py reads (through _env or os.environ)."""
    text = (REPO / "gunicorn.conf.py").read_text()
    names = {f"TORCHGATE_{n}" for n in re.findall(r'_env\("([A-Z_]+)"', text)}
    names |= {f"TORCHGATE_{n}" for n in re.findall(r'_tls_choice\("([A-Z_]+)"', text)}
    return names | set(NAME.findall(text))


def known_names() -> set[str]:
    return ({f"TORCHGATE_{n}" for n in SETTING_NAMES} | {"TORCHGATE_CONFIG"}
            | {f"TORCHGATE_{n}_FILE" for n in SECRET_NAMES} | gunicorn_names())


@pytest.mark.parametrize("path", [*DEPLOY_FILES, REPO / "docs" / "operations.md"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_torchgate_name_in_the_deployment_files_is_read_by_the_gateway(path):
    used = {n for n in NAME.findall(path.read_text()) if not n.startswith("TORCHGATE_TEST_")}
    assert used - known_names() == set()


def test_the_image_runs_the_command_the_ops_tests_run():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    assert "torch==2.13.0" in dockerfile


def test_nginx_refuses_bodies_above_the_gateway_default_limit():
    front = (REPO / "deploy" / "nginx" / "torchgate" / "front.conf").read_text()
    megabytes = int(re.search(r"client_max_body_size (\d+)m;", front).group(1))
    assert megabytes * 1024 * 1024 == Settings().max_body_bytes
    tls = (REPO / "deploy" / "nginx" / "torchgate.conf").read_text()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls
    assert "include torchgate/front.conf;" in tls


def test_the_configmap_settings_load_in_production(tmp_path):
    text = (REPO / "deploy" / "k8s" / "configmap.yaml").read_text()
    block = textwrap.dedent(text.partition("torchgate.toml: |\n")[2])
    config = tmp_path / "torchgate.toml"
    config.write_text(block)
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(48))
    key = "A" * 42 + "E"  # 32 bytes as base64url
    settings = load_settings(environ={
        "TORCHGATE_CONFIG": str(config), "TORCHGATE_JWT_SECRET_FILE": str(secret),
        "TORCHGATE_MASTER_KEY": key, "TORCHGATE_MODEL_KEYS": f"k1:{key}"})
    assert settings.env == "production"
    assert settings.trusted_proxies == 2  # the ingress controller and the nginx sidecar
    assert settings.model_repository == Path("/models")
