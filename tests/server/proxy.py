"""nginx from Debian as the deployment's TLS balancer, configured from ``deploy/nginx.conf``.

The shipped file is rendered for the test (its placeholder addresses, ports, names and
certificate paths replaced) and included in a main config that keeps every file nginx
writes in the proxy's own folder. A second, plain server block fronts the S3 store at its
public address and logs each request there, so a test can see who used that address.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .services import free_port

__all__ = ["TlsProxy", "make_certificate", "nginx_binary", "render_site"]

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
S3_LOG_FORMAT = "'$request_method $http_host $uri $status'"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None
    )


def make_certificate(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` and 127.0.0.1; clients trust it by file."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=DNS:{host},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def spki_hash(cert: Path) -> str:
    """The certificate's public key hash, for Chromium's --ignore-certificate-errors-spki-list."""
    public = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
        check=True,
        capture_output=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=public,
        check=True,
        capture_output=True,
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _replace(text: str, old: str, new: str, count: int) -> str:
    found = text.count(old)
    assert found == count, f"deploy/nginx.conf: expected {count} of {old!r}, found {found}"
    return text.replace(old, new)


def render_site(
    *,
    replicas: list[str],
    https_port: int,
    http_port: int,
    server_name: str,
    cert: Path,
    key: Path,
    bind_from: str,
) -> str:
    """deploy/nginx.conf with this machine's values; ``bind_from`` is where the balancer's
    requests to the replicas leave from (it stands for another host)."""
    text = SHIPPED.read_text()
    text = _replace(text, "server 10.0.1.11:8787 ", f"server {replicas[0]} ", 1)
    text = _replace(text, "server 10.0.1.12:8787 ", f"server {replicas[1]} ", 1)
    text = _replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};", 1)
    text = _replace(text, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;", 1)
    text = _replace(text, "server_name roark.example.com;", f"server_name {server_name};", 2)
    text = _replace(text, "/etc/ssl/roark/fullchain.pem", str(cert), 1)
    text = _replace(text, "/etc/ssl/roark/privkey.pem", str(key), 1)
    text = _replace(
        text,
        "proxy_pass http://roark_replicas;",
        f"proxy_pass http://roark_replicas;\n        proxy_bind {bind_from};",
        1,
    )
    return text


@dataclass
class TlsProxy:
    process: subprocess.Popen[bytes]
    root: Path
    url: str
    """Where clients reach the replicas: https://<server name>:<port>."""
    cert: Path
    s3_url: str
    """The S3 store's public address (plain http, on another loopback address)."""

    @classmethod
    def start(
        cls,
        *,
        replicas: list[str],
        server_name: str,
        bind_from: str,
        s3_endpoint: str,
        s3_public: str,
    ) -> TlsProxy:
        """``s3_public`` (host:port) fronts ``s3_endpoint``, passing the Host header on."""
        binary = nginx_binary()
        assert binary is not None
        root = Path(tempfile.mkdtemp(prefix="roark-nginx-", dir="/tmp"))
        os.chmod(root, 0o755)  # nginx's workers run as nobody and use the temp folders
        cert, key = make_certificate(root, server_name)
        https_port, http_port = free_port(), free_port()
        site = render_site(
            replicas=replicas,
            https_port=https_port,
            http_port=http_port,
            server_name=server_name,
            cert=cert,
            key=key,
            bind_from=bind_from,
        )
        (root / "roark.conf").write_text(site)
        temp_paths = "\n".join(
            f"    {kind}_temp_path {root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (root / "nginx.conf").write_text(
            f"""pid {root / "nginx.pid"};
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp_paths}
    include {root / "roark.conf"};
    log_format s3 {S3_LOG_FORMAT};
    server {{
        listen {s3_public};
        access_log {root / "s3.log"} s3;
        client_max_body_size 0;
        location / {{
            proxy_pass {s3_endpoint};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""
        )
        log = open(root / "error.log", "ab")  # noqa: SIM115 - stays open for the child
        process = subprocess.Popen(
            [
                binary,
                "-e",
                "stderr",
                "-p",
                str(root),
                "-c",
                str(root / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        url = f"https://{server_name}:{https_port}"
        proxy = cls(process, root, url, cert, f"http://{s3_public}")
        proxy._wait_listening(https_port)
        return proxy

    def _wait_listening(self, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start: {self.log()}")

    def log(self) -> str:
        return (self.root / "error.log").read_text(errors="replace")[-3000:]

    def s3_requests(self) -> list[tuple[str, str, str, int]]:
        """(method, host, path, status) of each request to the store's public address."""
        path = self.root / "s3.log"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            method, host, uri, status = line.split(" ")
            rows.append((method, host, uri, int(status)))
        return rows

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
