"""The shipped nginx front (deploy/nginx/sidecar.conf) as the operations tests run it.

`NginxFront.start` copies the shipped files into a folder of the test's own, changes only the
addresses (listen ports on 127.0.0.1, the gunicorn upstream's port) and runs nginx as the test's
user with its own prefix, pid file, temp paths and error log there.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.ops.processes import free_port, stop_group

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "nginx"
START_TIMEOUT = 15.0
MAIN_CONF = """\
{user}daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log notice;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;
    include {server_file};
}}
"""


def user_directive() -> str:
    """Under root (CI) nginx's workers would run as nobody, who cannot enter the test's private
    temporary folder to buffer a large body there: keep them as the test's user."""
    return f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""


def nginx_binary() -> str | None:
    """nginx on PATH, or where the Debian package puts it (/usr/sbin is not on every PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def replace_once(text: str, old: str, new: str) -> str:
    """text with old replaced; a shipped file that no longer holds `old` fails loudly."""
    if text.count(old) != 1:
        raise AssertionError(f"the shipped nginx config should hold {old!r} once")
    return text.replace(old, new)


def render(root: Path, upstream_port: int, port: int, metrics_port: int) -> Path:
    """The shipped config under root with test addresses; the main nginx.conf to run."""
    shutil.copytree(SHIPPED / "torchgate", root / "torchgate")
    upstream = root / "torchgate" / "upstream.conf"
    upstream.write_text(replace_once(upstream.read_text(), "server 127.0.0.1:8000;",
                                     f"server 127.0.0.1:{upstream_port};"))
    sidecar = (SHIPPED / "sidecar.conf").read_text()
    sidecar = replace_once(sidecar, "listen 8080;", f"listen 127.0.0.1:{port};")
    sidecar = replace_once(sidecar, "listen 9100;", f"listen 127.0.0.1:{metrics_port};")
    sidecar = replace_once(sidecar, "access_log /dev/stdout", f"access_log {root}/access.log")
    (root / "sidecar.conf").write_text(sidecar)
    (root / "temp").mkdir()
    main = root / "nginx.conf"
    main.write_text(MAIN_CONF.format(user=user_directive(), root=root, server_file="sidecar.conf"))
    return main


def check_tls_config(root: Path, certificate: Path, key: Path) -> subprocess.CompletedProcess:
    """`nginx -t` of the shipped TLS front (torchgate.conf) with a test certificate and log."""
    shutil.copytree(SHIPPED / "torchgate", root / "torchgate")
    tls = (SHIPPED / "torchgate.conf").read_text()
    tls = replace_once(tls, "/etc/nginx/tls/fullchain.pem", str(certificate))
    tls = replace_once(tls, "/etc/nginx/tls/privkey.pem", str(key))
    tls = replace_once(tls, "/var/log/nginx/", f"{root}/")
    (root / "torchgate.conf").write_text(tls)
    (root / "temp").mkdir()
    main = root / "nginx.conf"
    main.write_text(MAIN_CONF.format(user=user_directive(), root=root,
                                     server_file="torchgate.conf"))
    return subprocess.run([str(nginx_binary()), "-t", "-p", str(root), "-c", str(main)],
                          capture_output=True, text=True, timeout=30, check=False)


@dataclass
class NginxFront:
    """A running nginx master in front of 127.0.0.1:upstream_port."""

    url: str
    metrics_url: str
    process: subprocess.Popen
    root: Path

    @classmethod
    def start(cls, root: Path, upstream_port: int) -> NginxFront:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed")
        port, metrics_port = free_port(), free_port()
        main = render(root, upstream_port, port, metrics_port)
        with (root / "nginx.stderr").open("wb") as log:
            process = subprocess.Popen([binary, "-p", str(root), "-c", str(main)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       start_new_session=True)
        front = cls(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}", process, root)
        try:
            front.wait_until_listening(port)
        except BaseException:
            front.stop()
            raise
        return front

    def wait_until_listening(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited {self.process.returncode}:\n" + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen in time:\n" + self.log_text())

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in
                       (self.root / "nginx.stderr", self.root / "error.log") if path.exists())

    def stop(self) -> int:
        return stop_group(self.process)
