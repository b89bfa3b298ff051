"""Helpers for the tuning / dataset / adapter tests: real registries, a real HTTP server, CLI runners.

Nothing here is mocked: the registry is Debian's `docker-registry` (CNCF distribution 2.8) bound to
127.0.0.1 with htpasswd auth and a config file written here (never the package's default config, which
listens on all interfaces); the HTTP server is the stdlib's, on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

USER, PASSWORD = "testuser", "testpass"
# bcrypt of "testpass" (htpasswd -Bbn testuser testpass); committed so the suite does not need apache2-utils.
HTPASSWD_LINE = "testuser:$2y$05$0SMzwxyCs7YjOytV.IFLeenP2Xl.tP9BjqB93XqKcxTTC1N8CF3oy\n"
BIN = Path(sys.executable).parent


def require_binary(*names: str) -> str:
    """Path of the first binary found; skip loudly, or fail under CI=true, when none is installed."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{' / '.join(names)} not installed (apt-get install docker-registry skopeo apache2-utils)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}")
    pytest.skip(f"SKIPPED LOUDLY: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def auth_config(path: Path, host: str, user: str = USER, password: str = PASSWORD) -> Path:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return path


@dataclass
class Registry:
    host: str
    scheme: str
    root: Path
    docker_config: Path
    wrong_password_config: Path
    ca_file: Path | None = None
    log: Path = field(default_factory=Path)

    def get(self, path: str) -> tuple[int, bytes]:
        """Authenticated GET against the registry API (for assertions only)."""
        import ssl

        request = urllib.request.Request(f"{self.scheme}://{self.host}{path}")
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def repositories(self) -> list[str]:
        status, body = self.get("/v2/_catalog")
        assert status == 200, body
        return list(json.loads(body)["repositories"] or [])


def _wait_until_answers(url: str, proc: subprocess.Popen[bytes], log: Path, ca: Path | None) -> None:
    import ssl

    context = ssl.create_default_context(cafile=str(ca)) if ca else None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1, context=context)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"docker-registry did not answer {url}: {log.read_text()[-2000:]}")


@contextmanager
def run_registry(root: Path, *, tls: bool = False) -> Iterator[Registry]:
    """Start docker-registry on 127.0.0.1 with htpasswd auth (and a self-signed cert when `tls`)."""
    binary = require_binary("docker-registry", "registry")
    root.mkdir(parents=True, exist_ok=True)
    (root / "htpasswd").write_text(HTPASSWD_LINE)
    tls_block, ca = "", None
    if tls:
        openssl = require_binary("openssl")
        ca = root / "cert.pem"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(root / "key.pem"), "-out", str(ca)],
            check=True, capture_output=True,
        )  # fmt: skip
        tls_block = f", tls: {{certificate: {ca}, key: {root / 'key.pem'}}}"
    for attempt in range(2):  # the free port can be taken between bind(0) and the registry's listen
        port = free_port()
        host = f"127.0.0.1:{port}"
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'store'}}}, delete: {{enabled: true}}}}\n"
            f'http: {{addr: "{host}", secret: test-only{tls_block}}}\n'
            f"auth: {{htpasswd: {{realm: kaito-test, path: {root / 'htpasswd'}}}}}\n"
        )
        log = root / "registry.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=sink, stderr=sink)
        scheme = "https" if tls else "http"
        try:
            _wait_until_answers(f"{scheme}://{host}/v2/", proc, log, ca)
        except RuntimeError:
            proc.kill()
            proc.wait()
            if attempt == 0 and "address already in use" in log.read_text():
                continue
            raise
        break
    try:
        yield Registry(
            host=host,
            scheme=scheme,
            root=root,
            docker_config=auth_config(root / "docker-config.json", host),
            wrong_password_config=auth_config(root / "wrong-config.json", host, password="not-the-password"),
            ca_file=ca,
            log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class HTTPServer:
    base: str
    routes: dict[str, Route]
    hits: dict[str, int]

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@contextmanager
def run_http_server() -> Iterator[HTTPServer]:
    """A stdlib HTTP server on 127.0.0.1; tests register `routes[path] = handler(request)`."""
    routes: dict[str, Route] = {}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            hits[path] = hits.get(path, 0) + 1
            route = routes.get(path)
            if route is None:
                self.send_error(404)
                return
            route(self)

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPServer(f"http://127.0.0.1:{server.server_address[1]}", routes, hits)
    finally:
        server.shutdown()
        server.server_close()


def body(data: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Route:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(data)

    return handle


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: a private HOME (so ~/.docker/config.json is never read)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DOCKER_CONFIG", "ORAS_USER", "ORAS_PASS"}}
    env.update({"HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    return env


def run_cli(
    name: str, *args: str | Path, env: dict[str, str], timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


@dataclass
class TuneRun:
    """One finished `kaito-tune` subprocess: where it wrote, and the JSON events it printed."""

    output: Path
    data: Path
    config: Path
    model: Path
    returncode: int
    stdout: str
    stderr: str
    args: list[str]

    @property
    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def of(self, kind: str) -> list[dict[str, object]]:
        return [e for e in self.events if e["event"] == kind]

    def metrics(self) -> dict[str, object]:
        return dict(json.loads((self.output / "training_metrics.json").read_text()))

    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()})

    @classmethod
    def from_json(cls, text: str) -> TuneRun:
        raw = json.loads(text)
        paths = {"output", "data", "config", "model"}
        return cls(**{k: Path(v) if k in paths else v for k, v in raw.items()})


def tune(
    root: Path, config: str, model: Path, *extra: str, env: dict[str, str], data: Path | None = None
) -> TuneRun:
    """Run kaito-tune with `config` (YAML text) on `root/data`, writing to `root/results`."""
    data = data or root / "data"
    config_path = root / "training_config.yaml"
    config_path.write_text(config)
    output = root / "results"
    args = [
        "--config",
        str(config_path),
        "--data",
        str(data),
        "--output",
        str(output),
        "--model",
        str(model),
        *extra,
    ]
    result = run_cli("kaito-tune", *args, env=env, timeout=600)
    return TuneRun(output, data, config_path, model, result.returncode, result.stdout, result.stderr, args)


@dataclass
class Server:
    """A `kaito-serve` subprocess on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kaito-serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"kaito-serve not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def complete(self, prompt: str, max_tokens: int = 16) -> str:
        """Greedy completion through the OpenAI-compatible /v1/completions."""
        payload = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}).encode()
        request = urllib.request.Request(
            f"{self.url}/v1/completions", data=payload, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return str(json.loads(response.read())["choices"][0]["text"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_serve(*args: str | Path, log: Path, env: dict[str, str]) -> Server:
    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(BIN / "kaito-serve"), *map(str, args), "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Server(proc, port, log)
