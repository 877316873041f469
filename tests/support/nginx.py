"""Debian's nginx as the HTTPS reverse proxy in front of a test backend, run from the one
checked-in config ``docker/nginx-resolver.conf`` (the documented production config), filled in
with the test's certificate and free loopback ports.

Everything nginx writes (pid, error and access logs, temp files) stays in the test's folder:
``nginx -p DIR -c DIR/nginx.conf -e DIR/error.log`` with ``daemon off``, in its own process
group, stopped with SIGQUIT (graceful) and its group killed if anything is left.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.net import free_port, wait_port
from tests.support.pgroup import kill_members

if TYPE_CHECKING:  # conftest loads this plugin: no cryptography import for every test run
    from tests.support.certs import Pki

__all__ = [
    "NGINX",
    "RESOLVER_CONF",
    "Nginx",
    "nginx_available",
    "render_template",
    "require_nginx",
]

ROOT = Path(__file__).parents[2]
NGINX = os.environ.get("SALTGW_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
RESOLVER_CONF = ROOT / "docker" / "nginx-resolver.conf"

# ${UPPER_CASE} is ours; nginx's own variables ($host, ${host}) are lower case and stay
_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def nginx_available() -> bool:
    return Path(NGINX).is_file() and os.access(NGINX, os.X_OK)


def require_nginx() -> None:
    """Skip (on a developer's machine) or fail (in CI) when nginx is not installed."""
    if nginx_available():
        return
    reason = f"nginx is not installed ({NGINX}; Debian's nginx-light: scripts/setup.sh dev apt)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (.ci/run runs scripts/test.sh)")
    pytest.skip(reason)


def render_template(text: str, values: Mapping[str, str], where: Path = RESOLVER_CONF) -> str:
    """Fill in each ``${NAME}`` as ``envsubst`` does; a placeholder with no value, or a value
    for no placeholder, is an error naming it and the file."""
    names = set(_PLACEHOLDER.findall(text))
    if missing := sorted(names - set(values)):
        raise KeyError(f"{where}: no value for {', '.join(missing)}")
    if unused := sorted(set(values) - names):
        raise KeyError(f"{where}: no placeholder {', '.join(unused)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


class Nginx:
    """nginx serving ``https://localhost:{https_port}/`` (and redirecting
    ``http://localhost:{http_port}/`` there), proxying to ``127.0.0.1:{backend_port}``."""

    def __init__(self, workdir: Path, pki: Pki, backend_port: int) -> None:
        self.workdir = workdir
        self.https_port = free_port()
        self.http_port = free_port()
        self.backend_port = backend_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "nginx.conf"
        self.site = workdir / "saltgw-resolver.conf"
        self.error_log = workdir / "error.log"
        self.access_log = workdir / "access.log"
        workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (workdir / "temp" / sub).mkdir(parents=True, exist_ok=True)
        self.site.write_text(
            render_template(
                RESOLVER_CONF.read_text(),
                {
                    "RESOLVER_SERVER_NAME": "localhost",
                    "RESOLVER_PUBLIC_ORIGIN": f"https://localhost:{self.https_port}",
                    "RESOLVER_HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
                    "RESOLVER_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
                    "RESOLVER_TLS_CERT": str(pki.server_cert),
                    "RESOLVER_TLS_KEY": str(pki.server_key),
                    "RESOLVER_BACKEND": f"127.0.0.1:{backend_port}",
                },
            )
        )
        # as root, workers would run as 'nobody', who cannot enter the test's private folder
        as_root = "user root;\n" if os.geteuid() == 0 else ""
        temp = workdir / "temp"
        self.conf.write_text(
            f"{as_root}"
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {workdir}/nginx.pid;\n"
            f"error_log {self.error_log} notice;\n"
            "events { worker_connections 128; }\n"
            "http {\n"
            f"  access_log {self.access_log};\n"
            f"  client_body_temp_path {temp}/body;\n"
            f"  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n"
            f"  uwsgi_temp_path {temp}/uwsgi;\n"
            f"  scgi_temp_path {temp}/scgi;\n"
            f"  include {self.site};\n"
            "}\n"
        )

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.http_port}"

    def _args(self) -> list[str]:
        return [NGINX, "-p", f"{self.workdir}/", "-c", str(self.conf), "-e", str(self.error_log)]

    def check(self) -> None:
        """``nginx -t``: the rendered config is valid, or AssertionError with nginx's words."""
        proc = subprocess.run([*self._args(), "-t"], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"nginx -t on {self.conf}: {proc.stdout}{proc.stderr}"

    def start(self, timeout: float = 15.0) -> None:
        assert self.proc is None
        self.check()
        with (self.workdir / "nginx.out").open("ab") as out:
            self.proc = subprocess.Popen(
                self._args(), stdout=out, stderr=out, cwd=self.workdir, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        for port in (self.https_port, self.http_port):
            try:
                wait_port(port, max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                code = self.proc.poll()
                self.stop()
                log = self.error_log.read_text() if self.error_log.exists() else ""
                raise AssertionError(
                    f"nginx (exit {code}) is not listening on {port}: {log}"
                ) from None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGQUIT (finish the requests in hand, then exit); SIGKILL for the whole process group
        if the master outlives ``timeout``, and for any worker it left behind."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_members(proc.pid)
                proc.wait(timeout)
        kill_members(proc.pid)


@pytest.fixture
def https_proxy(tmp_path: Path) -> Iterator[Callable[[Pki, int], Nginx]]:
    """``https_proxy(pki, backend_port)`` -> a started :class:`Nginx` from
    docker/nginx-resolver.conf; every one started is stopped after the test."""
    started: list[Nginx] = []

    def start(pki: Pki, backend_port: int) -> Nginx:
        require_nginx()
        proxy = Nginx(tmp_path / f"nginx-{len(started)}", pki, backend_port)
        started.append(proxy)
        proxy.start()
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
