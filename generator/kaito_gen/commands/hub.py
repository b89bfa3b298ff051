"""The Hugging Face Hub edge of `kaito-gen presets add|pin`: the only code of kaito-gen that opens a socket.

It asks the Hub (``HF_ENDPOINT``, default https://huggingface.co; token from ``--token`` or
``HF_TOKEN``) what a repo holds at one commit, through huggingface_hub's client: ``model_info``
resolves a revision to its commit, ``list_repo_tree`` lists the files with their sizes and
``hf_hub_download`` fetches config.json (or a Mistral-format params.json) into a throw-away cache.
Every failure becomes a ``HubError`` with a hint, never a traceback; the token is never printed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from kaito_gen.core.errors import ExitCode, KaitoGenError

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 30.0
MAX_CONFIG_BYTES = 4 * 2**20  # a config.json is a few KiB; refuse to parse anything huge


class HubError(KaitoGenError):
    """The Hub refused or could not be reached; ``hint`` says what to do."""

    exit_code = ExitCode.INVALID

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}\n  hint: {hint}")
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Snapshot:
    repo: str
    sha: str
    gated: bool
    config: dict[str, Any] | None
    params: dict[str, Any] | None
    files: tuple[tuple[str, int], ...]


class Hub:
    """A huggingface_hub client for one endpoint and token."""

    def __init__(self, endpoint: str | None, token: str | None) -> None:
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        # huggingface_hub reads HF_ENDPOINT once, at import, for its own side requests (the agent
        # registry in the User-Agent); set it first so no request goes to a Hub the user did not choose.
        os.environ["HF_ENDPOINT"] = self.endpoint
        from huggingface_hub import HfApi
        from huggingface_hub.utils.tqdm import disable_progress_bars

        disable_progress_bars()
        self.token = token or None
        self.api = HfApi(endpoint=self.endpoint, token=self.token)

    def commit(self, repo: str, revision: str | None) -> tuple[str, bool]:
        """(commit sha of ``revision`` or of the default branch, is the repo gated or private?)."""
        try:
            info = self.api.model_info(repo, revision=revision, timeout=TIMEOUT_S)
        except Exception as exc:  # every huggingface_hub/httpx failure is mapped below
            self._fail(exc, repo, revision)
        if not info.sha:
            raise HubError(f"{repo}: the Hub returned no commit for {revision or 'main'}", "retry later")
        return info.sha, bool(info.gated) or bool(info.private)

    def snapshot(self, repo: str, revision: str | None) -> Snapshot:
        sha, gated = self.commit(repo, revision)
        try:
            entries = list(self.api.list_repo_tree(repo, revision=sha, recursive=True))
        except Exception as exc:
            self._fail(exc, repo, revision)
        files = tuple(sorted((e.path, int(e.size)) for e in entries if hasattr(e, "size")))
        names = {path for path, _ in files}
        config = self._json(repo, sha, "config.json") if "config.json" in names else None
        params = self._json(repo, sha, "params.json") if config is None and "params.json" in names else None
        return Snapshot(repo, sha, gated, config, params, files)

    def _json(self, repo: str, sha: str, filename: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="kaito-gen-hub-") as cache:
            try:
                path = Path(self.api.hf_hub_download(repo, filename, revision=sha, cache_dir=cache))
            except Exception as exc:
                self._fail(exc, repo, sha)
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise HubError(f"{repo}: {filename} is over {MAX_CONFIG_BYTES} bytes", "check the repo")
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise HubError(
                    f"{repo}@{sha[:8]}: {filename} is not valid JSON ({exc})", "check the repo"
                ) from exc
        if not isinstance(doc, dict):
            raise HubError(f"{repo}@{sha[:8]}: {filename} is not a JSON object", "check the repo")
        return doc

    def _fail(self, exc: Exception, repo: str, revision: str | None) -> NoReturn:
        raise hub_error(exc, repo, revision, self.endpoint, bool(self.token)) from exc


def hub_error(exc: Exception, repo: str, revision: str | None, endpoint: str, has_token: bool) -> HubError:
    """A HubError for a huggingface_hub/httpx exception (messages name no token)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = getattr(getattr(exc, "response", None), "status_code", None)
    token_hint = "" if has_token else "pass --token or set HF_TOKEN; "
    if isinstance(exc, GatedRepoError) or (status == 403 and isinstance(exc, HfHubHTTPError)):
        return HubError(
            f"{repo} is gated on Hugging Face: the weights need an accepted licence and a token"
            + ("" if has_token else " (none given)")
            + ("" if status is None else f" (HTTP {status})"),
            f"accept the licence at {endpoint}/{repo}, then {token_hint}use a token of the account that accepted it",
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(
            f"{repo} has no revision {revision!r} (HTTP {status or 404})",
            f"use a branch, tag or full commit of {endpoint}/{repo}/commits/main",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"{repo}: no such model repository on {endpoint} (HTTP {status or 404})",
            f"check the id (ORG/MODEL, as in {endpoint}/ORG/MODEL); if the repo is private, {token_hint}"
            "use a token that can read it",
        )
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(
            "the Hub is switched off (HF_HUB_OFFLINE=1)", "unset HF_HUB_OFFLINE to fetch from the Hub"
        )
    if status == 401:
        return HubError(
            f"{repo}: the Hub refused the token (HTTP 401)",
            "check the token (`hf auth whoami`) or pass another",
        )
    if isinstance(exc, HfHubHTTPError) and status is not None:
        return HubError(f"{repo}: the Hub answered HTTP {status}", f"retry later, or check {endpoint}")
    if isinstance(exc, (LocalEntryNotFoundError, OSError)) or type(exc).__module__.startswith("httpx"):
        return HubError(
            f"cannot reach the Hugging Face Hub at {endpoint} ({type(exc).__name__})",
            "check the network (or a proxy); HF_ENDPOINT chooses another Hub or a mirror",
        )
    return HubError(
        f"{repo}: unexpected answer from the Hub ({type(exc).__name__})", f"retry, or check {endpoint}"
    )
