"""Mutual TLS at gunicorn: TORCHGATE_TLS_* settings, and a real server that demands client certs."""

from __future__ import annotations

import json
import os
import runpy
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.ops.processes import free_port
from tests.ops_tls.certs import Issued, issue, new_authority
from tests.ops_tls.server import (
    GUNICORN,
    REPO,
    Server,
    https_get,
    instance_environment,
    start,
    stop,
    wait_until_serving,
)

CONF = REPO / "gunicorn.conf.py"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Issued]:
    root = tmp_path_factory.mktemp("pki")
    ca, other_ca = new_authority(root, "Gateway Client CA"), new_authority(root, "Other CA")
    return {
        "ca": ca.files,
        "server": issue(ca, root, "gateway", server=True),
        "client": issue(ca, root, "batch-job"),
        "expired client": issue(ca, root, "old-job", expired=True),
        "foreign client": issue(other_ca, root, "intruder"),
    }


def client_context(pki: dict[str, Issued], certificate: str | None) -> ssl.SSLContext:
    """A client that trusts the gateway's CA and presents `certificate` (or none)."""
    context = ssl.create_default_context(cafile=pki["ca"].cert)
    if certificate is not None:
        context.load_cert_chain(pki[certificate].cert, pki[certificate].key)
    return context


@pytest.fixture(scope="module")
def server(pki, tmp_path_factory):
    root = tmp_path_factory.mktemp("mtls-gateway")
    port = free_port()
    env = instance_environment(root, port)
    env.update(TORCHGATE_TLS_CERT=str(pki["server"].cert), TORCHGATE_TLS_KEY=str(pki["server"].key),
               TORCHGATE_TLS_CA=str(pki["ca"].cert), TORCHGATE_TLS_CLIENT_CERT="required")
    running = Server(start(env, root / "gunicorn.log"), port, root / "gunicorn.log")
    try:
        wait_until_serving(running, client_context(pki, "client"))
        yield running
    finally:
        stop(running.process)


@pytest.mark.slow
def test_client_with_a_certificate_from_the_ca_is_served(server, pki):
    status, body = https_get(server.port, "/healthz", client_context(pki, "client"))
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def logged_within(log: Path, text: str, seconds: float = 5.0) -> bool:
    """Whether the server's log shows `text` within a few seconds (another process writes it)."""
    deadline = time.monotonic() + seconds
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
@pytest.mark.parametrize(("certificate", "server_reason"), [
    (None, "peer did not return a certificate"),
    ("foreign client", "certificate verify failed: unable to get local issuer certificate"),
    ("expired client", "certificate verify failed: certificate has expired"),
])
def test_client_without_a_valid_certificate_is_refused_in_the_handshake(server, pki, certificate,
                                                                       server_reason):
    with pytest.raises((ssl.SSLError, ConnectionError)) as caught:
        https_get(server.port, "/healthz", client_context(pki, certificate))
    assert not isinstance(caught.value, ssl.SSLCertVerificationError)  # not the client's doing
    assert logged_within(server.log, server_reason)


def load_conf(monkeypatch, tmp_path, **tls: str) -> dict:
    """gunicorn.conf.py evaluated with exactly these TORCHGATE_TLS_* variables."""
    for name in [k for k in os.environ if k.startswith("TORCHGATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TORCHGATE_PRELOAD", "no")  # evaluating the file must not touch torch
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name, value in tls.items():
        monkeypatch.setenv(f"TORCHGATE_TLS_{name}", value)
    return runpy.run_path(str(CONF))


@pytest.mark.parametrize(("tls", "certfile", "cert_reqs"), [
    ({}, None, ssl.CERT_NONE),
    ({"CERT": "s.crt", "KEY": "s.key"}, "s.crt", ssl.CERT_NONE),
    ({"CERT": "s.crt", "KEY": "s.key", "CA": "ca.crt"}, "s.crt", ssl.CERT_REQUIRED),
    ({"CERT": "s.crt", "CA": "ca.crt", "CLIENT_CERT": "required"}, "s.crt", ssl.CERT_REQUIRED),
    ({"CERT": "s.crt", "CA": "ca.crt", "CLIENT_CERT": "optional"}, "s.crt", ssl.CERT_OPTIONAL),
    ({"CERT": "s.crt", "CA": "ca.crt", "CLIENT_CERT": "none"}, "s.crt", ssl.CERT_NONE),
])
def test_tls_settings_map_to_gunicorn(monkeypatch, tmp_path, tls, certfile, cert_reqs):
    conf = load_conf(monkeypatch, tmp_path, **tls)
    assert (conf["certfile"], conf["ca_certs"]) == (certfile, tls.get("CA"))
    assert conf["cert_reqs"] == cert_reqs
    assert conf["TLS_MIN_VERSION"] == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(("tls", "message"), [
    ({"CERT": "s.crt", "CLIENT_CERT": "required"},
     "TORCHGATE_TLS_CLIENT_CERT=required needs TORCHGATE_TLS_CERT and TORCHGATE_TLS_CA"),
    ({"CA": "ca.crt"}, "TORCHGATE_TLS_CLIENT_CERT=required needs TORCHGATE_TLS_CERT"),
    ({"CERT": "s.crt", "CA": "ca.crt", "CLIENT_CERT": "yes"},
     "TORCHGATE_TLS_CLIENT_CERT: must be one of none, optional, required, got 'yes'"),
    ({"CERT": "s.crt", "MIN_VERSION": "1.1"},
     "TORCHGATE_TLS_MIN_VERSION: must be one of 1.2, 1.3, got '1.1'"),
    ({"KEY": "s.key"}, "TORCHGATE_TLS_KEY is set without TORCHGATE_TLS_CERT"),
])
def test_inconsistent_tls_settings_are_refused(monkeypatch, tmp_path, tls, message):
    with pytest.raises(ValueError, match=message):
        load_conf(monkeypatch, tmp_path, **tls)


@pytest.mark.parametrize(("version", "expected"), [
    (None, ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)])
def test_tls_context_has_the_minimum_version(monkeypatch, tmp_path, pki, version, expected):
    tls = {"CERT": str(pki["server"].cert), "KEY": str(pki["server"].key)}
    conf = load_conf(monkeypatch, tmp_path, **tls, **({"MIN_VERSION": version} if version else {}))
    settings = SimpleNamespace(certfile=tls["CERT"], keyfile=tls["KEY"], ca_certs=None)
    context = conf["ssl_context"](settings, lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert context.minimum_version == expected


def test_tls_context_is_built_once_per_version_of_the_files(monkeypatch, tmp_path, pki):
    conf = load_conf(monkeypatch, tmp_path)
    cert = tmp_path / "server.crt"
    cert.write_bytes(pki["server"].cert.read_bytes())
    settings = SimpleNamespace(certfile=str(cert), keyfile=str(pki["server"].key), ca_certs=None)
    built = []

    def factory() -> ssl.SSLContext:
        built.append(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        return built[-1]

    first, again = (conf["ssl_context"](settings, factory) for _ in range(2))
    os.utime(cert, ns=(0, cert.stat().st_mtime_ns + 10**9))  # a rotated certificate
    rotated = conf["ssl_context"](settings, factory)
    assert first is again
    assert rotated is not first
    assert len(built) == 2


def test_gunicorn_refuses_to_start_with_client_certs_but_no_ca(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHGATE_")}
    env.update(TORCHGATE_TLS_CERT="s.crt", TORCHGATE_TLS_CLIENT_CERT="required",
               TORCHGATE_PRELOAD="no", PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
               TORCHGATE_BIND=f"127.0.0.1:{free_port()}")
    result = subprocess.run([str(GUNICORN), "-c", str(CONF), "wsgi:app"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "TORCHGATE_TLS_CLIENT_CERT=required needs TORCHGATE_TLS_CERT and" in result.stderr
