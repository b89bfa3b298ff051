"""A real HTTP stand-in for the Hugging Face Hub on 127.0.0.1, serving repos from fixture folders.

It answers the routes huggingface_hub 2.x calls (read from its source: ``hf_api.py`` model_info /
list_repo_tree, ``file_download.py`` get_hf_file_metadata / hf_hub_download, and
``utils/_http.py`` hf_raise_for_status, which maps ``X-Error-Code`` to the client's exceptions):

    GET       /api/models/{org}/{name}[/revision/{rev}]        model info (sha, gated, siblings)
    GET       /api/models/{org}/{name}/tree/{rev}[/{path}]     file listing (type, oid, size, path, lfs)
    HEAD|GET  /{org}/{name}/resolve/{rev}/{file}               the file, X-Repo-Commit, ETag, Content-Length

A fixture repo is a folder ``{root}/{org}/{name}/`` holding ``repo.json`` and ``files/``:
``repo.json`` = {"revisions": {"main": "<40 hex>", ...}, "gated": false | "manual",
"token": "<token that was granted access>" (gated only), "sizes": {"<weight file>": bytes}}.
Files under ``files/`` are served as they are; weight files exist only as sizes in the listing.
Errors are the Hub's: 404 ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``, and 401
``GatedRepo`` for a gated file without the granted token. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class HubStub:
    root: Path
    requests: list[Seen] = field(default_factory=list)
    url: str = ""

    def repo(self, org: str, name: str) -> dict[str, Any] | None:
        meta = self.root / org / name / "repo.json"
        if not meta.is_file():
            return None
        doc: dict[str, Any] = json.loads(meta.read_text(encoding="utf-8"))
        return doc

    def set_main(self, org: str, name: str, sha: str) -> None:
        """Move the fixture's main branch (to test `pin` seeing a new commit)."""
        meta = self.root / org / name / "repo.json"
        doc = json.loads(meta.read_text(encoding="utf-8"))
        doc["revisions"]["main"] = sha
        meta.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def _sha(revisions: dict[str, str], rev: str) -> str | None:
    if rev in revisions:
        return revisions[rev]
    return rev if rev in revisions.values() else None


def _files(stub: HubStub, org: str, name: str, repo: dict[str, Any]) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    base = stub.root / org / name / "files"
    if base.is_dir():
        for path in sorted(base.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                out[path.relative_to(base).as_posix()] = (len(data), data)
    for path, size in repo.get("sizes", {}).items():
        out[path] = (int(size), None)
    return out


def _handler(stub: HubStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _send(self, status: int, body: bytes, head: bool, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, head: bool) -> None:
            body = json.dumps({"error": message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
            self._send(status, body, head, headers)

        def _json(self, doc: Any, head: bool) -> None:
            self._send(200, json.dumps(doc).encode(), head, {"Content-Type": "application/json"})

        def _serve(self, head: bool) -> None:
            path = urlsplit(self.path).path
            stub.requests.append(Seen(self.command, path, self.headers.get("Authorization")))
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                self._api(parts[2], parts[3], parts[4:], head)
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(parts[0], parts[1], parts[3], "/".join(parts[4:]), head)
            else:
                self._error(404, "NotFound", f"no route {path}", head)

        def _lookup(self, org: str, name: str, rev: str, head: bool) -> tuple[dict[str, Any], str] | None:
            repo = stub.repo(org, name)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found", head)
                return None
            sha = _sha(repo["revisions"], rev)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
                return None
            return repo, sha

        def _api(self, org: str, name: str, rest: list[str], head: bool) -> None:
            if not rest or rest[0] == "revision":
                rev = rest[1] if len(rest) > 1 else "main"
                found = self._lookup(org, name, rev, head)
                if found is None:
                    return
                repo, sha = found
                files = _files(stub, org, name, repo)
                self._json(
                    {
                        "_id": hashlib.sha1(f"{org}/{name}".encode()).hexdigest()[:24],
                        "id": f"{org}/{name}",
                        "modelId": f"{org}/{name}",
                        "sha": sha,
                        "private": False,
                        "gated": repo.get("gated", False),
                        "disabled": False,
                        "tags": [],
                        "siblings": [{"rfilename": p} for p in files],
                    },
                    head,
                )
            elif rest[0] == "tree" and len(rest) >= 2:
                found = self._lookup(org, name, rest[1], head)
                if found is None:
                    return
                repo, _ = found
                prefix = "/".join(rest[2:])
                entries = []
                for fpath, (size, data) in _files(stub, org, name, repo).items():
                    if prefix and not fpath.startswith(prefix + "/"):
                        continue
                    oid = hashlib.sha1(data if data is not None else fpath.encode()).hexdigest()
                    entry: dict[str, Any] = {"type": "file", "oid": oid, "size": size, "path": fpath}
                    if data is None:
                        entry["lfs"] = {
                            "oid": hashlib.sha256(fpath.encode()).hexdigest(),
                            "size": size,
                            "pointerSize": 134,
                        }
                    entries.append(entry)
                self._json(entries, head)
            else:
                self._error(404, "NotFound", "no such API route", head)

        def _resolve(self, org: str, name: str, rev: str, fpath: str, head: bool) -> None:
            found = self._lookup(org, name, rev, head)
            if found is None:
                return
            repo, sha = found
            if repo.get("gated") and self.headers.get("Authorization") != f"Bearer {repo.get('token')}":
                message = f"Access to model {org}/{name} is restricted. You must have access to it and be authenticated to access it. Please log in."
                self._error(401, "GatedRepo", message, head)
                return
            _size, data = _files(stub, org, name, repo).get(fpath, (0, None))
            if data is None:
                self._error(404, "EntryNotFound", f"{fpath} does not exist on {rev}", head)
                return
            etag = '"' + hashlib.sha1(data).hexdigest() + '"'
            headers = {"X-Repo-Commit": sha, "ETag": etag, "Content-Type": "application/octet-stream"}
            self._send(200, data, head, headers)

    return Handler


@contextmanager
def serve_hub(root: Path) -> Iterator[HubStub]:
    """Serve ``root``'s fixture repos on an ephemeral 127.0.0.1 port for the duration."""
    stub = HubStub(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="hub-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
