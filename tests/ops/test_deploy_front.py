"""No shipped deployment exposes gunicorn: the nginx front of deploy/nginx is the only way in.

Kubernetes (a sidecar), compose (the front owns the network namespace) and the image (gunicorn
on 127.0.0.1, nothing exposed) are read here; tests/ops/test_slow_clients.py runs the front.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.ops.front import check_tls_config, nginx_binary
from tests.ops_tls.certs import issue, new_authority

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
GUNICORN_BIND = "127.0.0.1:8000"
GUNICORN_PORT = 8000


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def nginx_ports() -> set[int]:
    """Ports the shipped sidecar config listens on."""
    return {int(port) for port in re.findall(r"^\s*listen (\d+);", (DEPLOY / "nginx" /
                                                                   "sidecar.conf").read_text(),
                                           re.MULTILINE)}


def pod_containers() -> dict[str, dict]:
    spec = load(DEPLOY / "k8s" / "deployment.yaml")["spec"]["template"]["spec"]
    return {container["name"]: container for container in spec["containers"]}


def env_of(container: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


def config_map_files(config_map: str) -> dict[str, str]:
    """Path inside the nginx container -> key of config_map mounted there."""
    spec = load(DEPLOY / "k8s" / "deployment.yaml")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod_containers()["nginx"]["volumeMounts"]}
    return {f"{mounts[volume['name']]}/{item['path']}": item["key"]
            for volume in spec["volumes"] if volume.get("configMap", {}).get("name") == config_map
            for item in volume["configMap"]["items"]}


def test_the_pod_runs_gunicorn_on_loopback_behind_an_nginx_sidecar():
    containers = pod_containers()
    gateway, nginx = containers["torchgate"], containers["nginx"]

    assert "ports" not in gateway
    assert env_of(gateway)["TORCHGATE_BIND"] == GUNICORN_BIND
    assert {port["containerPort"] for port in nginx["ports"]} == nginx_ports()
    assert GUNICORN_PORT not in nginx_ports()


def test_the_service_and_the_network_policy_lead_to_nginx_only():
    nginx = pod_containers()["nginx"]
    nginx_named = {port["name"]: port["containerPort"] for port in nginx["ports"]}
    service = load(DEPLOY / "k8s" / "service.yaml")["spec"]["ports"]
    policy = load(DEPLOY / "k8s" / "networkpolicy.yaml")["spec"]["ingress"]

    assert {nginx_named[port["targetPort"]] for port in service} == {8080}
    allowed = {port["port"] for rule in policy for port in rule["ports"]}
    assert allowed <= nginx_ports()
    assert GUNICORN_PORT not in allowed


def test_the_sidecar_mounts_the_shipped_nginx_files_where_their_includes_point():
    generated = load(DEPLOY / "kustomization.yaml")["configMapGenerator"][0]
    files = {Path(name).name: DEPLOY / name for name in generated["files"]}
    placed = config_map_files(generated["name"])
    includes = re.findall(r"include (\S+);", (DEPLOY / "nginx" / "sidecar.conf").read_text())

    assert all(path.is_file() for path in files.values())
    assert placed["/etc/nginx/conf.d/default.conf"] == "sidecar.conf"
    assert {f"/etc/nginx/{include}" for include in includes} == {
        path for path in placed if path.startswith("/etc/nginx/torchgate/")}
    assert set(placed.values()) == set(files)


def test_compose_publishes_only_the_front():
    services = load(DEPLOY / "compose.yaml")["services"]
    published = {name: service.get("ports", []) for name, service in services.items()}
    gateway = services["gateway"]

    assert [name for name, ports in published.items() if ports] == ["front"]
    assert {int(port.rsplit(":", 1)[1]) for port in published["front"]} <= nginx_ports()
    assert gateway["network_mode"] == "service:front"
    assert gateway["environment"]["TORCHGATE_BIND"] == GUNICORN_BIND
    assert gateway["environment"]["TORCHGATE_TRUSTED_PROXIES"] == "1"
    sources = [volume.split(":")[0] for volume in services["front"]["volumes"]]
    assert all((DEPLOY / source).exists() for source in sources)


@pytest.mark.parametrize("pattern", [r"^EXPOSE\b", r"-p\s+\S*8000", r"TORCHGATE_BIND=0\.0\.0\.0"])
def test_the_image_neither_exposes_nor_documents_a_public_gunicorn(pattern):
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"TORCHGATE_BIND={GUNICORN_BIND}" in dockerfile
    assert not re.search(pattern, dockerfile, re.MULTILINE)


def test_the_tls_front_for_one_machine_is_valid_nginx(tmp_path):
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (.ci/run installs the Debian package)")
    ca = new_authority(tmp_path / "pki", "front test CA")
    server = issue(ca, tmp_path / "pki", "front", server=True)

    checked = check_tls_config(tmp_path / "nginx", server.cert, server.key)

    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
