"""`kaito-gen presets add|pin` against a real HTTP stand-in of the Hugging Face Hub on 127.0.0.1.

The CLI runs as a subprocess with HF_ENDPOINT pointing at tests/support/hub_stub.py, so the real
huggingface_hub client makes real requests (model info, tree listing, file resolve); the fixture
repos are folders under tests/generator/hub/repos. HF_HOME is a temp dir, so nothing touches the
user's cache or token.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hub_stub import HubStub, serve_hub

HERE = Path(__file__).resolve().parent / "hub"
REPO = Path(__file__).resolve().parents[2]
KAITO_GEN = Path(sys.executable).with_name("kaito-gen")
GRANTED = "hf_granted_0123456789"  # the token the gated fixture repo accepts


def sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubStub]:
    repos = tmp_path / "repos"
    shutil.copytree(HERE / "repos", repos)
    with serve_hub(repos) as stub:
        yield stub


def cli(
    hub: HubStub, tmp_path: Path, *args: str, token: str | None = None, env_endpoint: bool = True
) -> subprocess.CompletedProcess[str]:
    # No HF_* settings, and no TRANSFORMERS_OFFLINE either: huggingface_hub reads it as HF_HUB_OFFLINE
    # (tests/runtime/conftest.py sets both for the runtime tests of the same pytest session).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "TRANSFORMERS_OFFLINE"}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no user cache or token; telemetry settings as shipped
    if env_endpoint:
        env["HF_ENDPOINT"] = hub.url
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [str(KAITO_GEN), "presets", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def table(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    shutil.copy(HERE / "table.yaml", path)
    return path


def test_add_writes_the_golden_row_and_is_idempotent(hub: HubStub, tmp_path: Path) -> None:
    path = table(tmp_path)
    result = cli(hub, tmp_path, "add", "acme/Tiny-Llama-3B", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert f"added tiny-llama-3b (acme/Tiny-Llama-3B @ {sha('tiny-llama main')})" in result.stdout
    expected = (HERE / "expected" / "add-tiny-llama.yaml").read_text(encoding="utf-8")
    assert path.read_text(encoding="utf-8") == expected
    # The real client's routes, at the resolved commit (not at "main") after the first call.
    routes = [(r.method, r.path) for r in hub.requests if r.path.startswith(("/api/models", "/acme"))]
    commit = sha("tiny-llama main")
    assert routes == [
        ("GET", "/api/models/acme/Tiny-Llama-3B"),
        ("GET", f"/api/models/acme/Tiny-Llama-3B/tree/{commit}"),
        ("HEAD", f"/acme/Tiny-Llama-3B/resolve/{commit}/config.json"),
        ("GET", f"/acme/Tiny-Llama-3B/resolve/{commit}/config.json"),
    ]
    again = cli(hub, tmp_path, "add", "acme/Tiny-Llama-3B", "--file", str(path))
    assert again.returncode == 0 and again.stdout.startswith("unchanged tiny-llama-3b"), again.stderr
    assert path.read_text(encoding="utf-8") == expected  # byte-identical
    # At a tag: the same row, refreshed in place to the tag's commit.
    tagged = cli(hub, tmp_path, "add", "acme/Tiny-Llama-3B@v1.0", "--file", str(path))
    assert tagged.returncode == 0 and tagged.stdout.startswith("updated tiny-llama-3b"), tagged.stderr
    assert path.read_text(encoding="utf-8") == expected.replace(commit, sha("tiny-llama v1.0"))
    assert any(r.path == "/api/models/acme/Tiny-Llama-3B/revision/v1.0" for r in hub.requests)


def test_add_to_the_shipped_table_keeps_every_comment_and_row(hub: HubStub, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    original = (REPO / "presets" / "models.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    endpoint = ("--endpoint", hub.url)  # the option instead of HF_ENDPOINT
    result = cli(
        hub,
        tmp_path,
        "add",
        "mistralai/Mistral-Tiny-2507",
        "--file",
        str(path),
        *endpoint,
        env_endpoint=False,
    )
    assert result.returncode == 0, result.stderr
    # huggingface_hub's own side request (agent registry) went to the chosen Hub too, not huggingface.co.
    assert "/api/agent-harnesses" in {r.path for r in hub.requests}
    assert "(Mistral format)" in result.stdout
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original)  # the shipped table is not sorted by name: the row goes last
    added = text[len(original) :]
    assert added.startswith("\n  - name: mistral-tiny-2507\n    hfRepo: mistralai/Mistral-Tiny-2507\n")
    for line in (
        f'    revision: "{sha("mistral tiny main")}"',
        "    architecture: MistralForCausalLM",  # vLLM's params.json mapping (no config.json)
        "    family: mistral",
        "    weightsGiB: 7.56",  # consolidated.safetensors 8115000000 B
        "    contextLength: 128000",  # vLLM's default for a params.json without max_position_embeddings
        "    kvBytesPerToken: 131072",  # 2 x 8 KV heads x 128 x 32 layers x 2 B
        "    quantization: fp8",  # qformat_weight fp8_e4m3
    ):
        assert line + "\n" in added, line


def test_gated_repo_needs_the_licence_and_a_token(hub: HubStub, tmp_path: Path) -> None:
    path = table(tmp_path)
    before = path.read_bytes()
    refused = cli(hub, tmp_path, "add", "acme/Gated-Llama-3B", "--file", str(path))
    assert refused.returncode == 2
    assert "acme/Gated-Llama-3B is gated on Hugging Face" in refused.stderr
    assert "(HTTP 401)" in refused.stderr and "accept the licence at" in refused.stderr
    assert "pass --token or set HF_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr and path.read_bytes() == before
    wrong = cli(hub, tmp_path, "add", "acme/Gated-Llama-3B", "--file", str(path), token="hf_wrong_987")
    assert wrong.returncode == 2 and "is gated" in wrong.stderr and "hf_wrong_987" not in wrong.stderr
    own = tmp_path / "team" / "models.yaml"  # a table that does not exist yet is created
    granted = cli(hub, tmp_path, "add", "acme/Gated-Llama-3B", "--file", str(own), token=GRANTED)
    assert granted.returncode == 0, granted.stderr
    assert f"created {own}: render with `--presets {own.parent}` to use it" in granted.stdout
    from kaito_gen.compiler.load import load_presets

    row = load_presets([own.parent]).find_model("acme/gated-llama-3b")  # the table loads with --presets
    assert row is not None and row.revision == sha("gated main") and row.download_auth_required
    path = own
    assert GRANTED not in granted.stdout + granted.stderr
    assert "downloadAuthRequired: true" in path.read_text(encoding="utf-8")
    assert f"Bearer {GRANTED}" in {r.authorization for r in hub.requests}


@pytest.mark.parametrize(
    ("model", "message", "hint"),
    [
        ("acme/No-Such-Model", "acme/No-Such-Model: no such model repository on", "check the id"),
        ("acme/Tiny-Llama-3B@v9", "acme/Tiny-Llama-3B has no revision 'v9' (HTTP 404)", "use a branch, tag"),
        (
            "acme/Weird-7B",
            "architecture WeirdForCausalLM is not supported by vLLM 0.32",
            "vllm_archs.json lists them",
        ),
        (
            "acme/Phi-3-Small-8k",
            "Phi3SmallForCausalLM (last served by vLLM 0.9.2) is not supported",
            "vllm_archs.json",
        ),
        (
            "acme/Magistral-Lookalike",
            "Mistral format (params.json, no config.json), but kaito-gen passes vLLM",
            "has a config.json",
        ),
    ],
    ids=["404-repo", "404-revision", "unsupported-arch", "dropped-arch", "mistral-format-unnamed"],
)
def test_add_refusals_are_clear(hub: HubStub, tmp_path: Path, model: str, message: str, hint: str) -> None:
    path = table(tmp_path)
    before = path.read_bytes()
    result = cli(hub, tmp_path, "add", model, "--file", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and hint in result.stderr
    assert "Traceback" not in result.stderr and path.read_bytes() == before


def test_unreachable_hub(tmp_path: Path) -> None:
    dead = HubStub(tmp_path)
    with serve_hub(tmp_path) as stub:
        dead.url = stub.url  # a port that was served and is now closed
    result = cli(dead, tmp_path, "add", "acme/Tiny-Llama-3B", "--file", str(tmp_path / "t.yaml"))
    assert result.returncode == 2
    assert f"cannot reach the Hugging Face Hub at {dead.url}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "t.yaml").exists()


def test_pin_one_unpinned_catalog_row(hub: HubStub, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    original = (REPO / "presets" / "models.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    result = cli(hub, tmp_path, "pin", "qwen3.8-27b", "--file", str(path))
    assert result.returncode == 0, result.stderr
    commit = sha("qwen3.8 main")
    assert result.stdout == f"qwen3.8-27b: unpinned -> {commit}\n"
    block = "  - name: qwen3.8-27b\n    hfRepo: Qwen/Qwen3.8-27B\n    revision: "
    assert path.read_text(encoding="utf-8") == original.replace(block + "unpinned", f'{block}"{commit}"')


def test_pin_all_and_check(hub: HubStub, tmp_path: Path) -> None:
    path = table(tmp_path)
    before = path.read_text(encoding="utf-8")
    check = cli(hub, tmp_path, "pin", "--all", "--check", "--file", str(path))
    assert check.returncode == 1, check.stderr
    assert check.stdout == (
        f"unpinned-one: unpinned -> {sha('unpinned-one main')} (would pin)\n"
        f"unpinned-two: unpinned -> {sha('unpinned-two main')} (would pin)\n"
    )
    assert path.read_text(encoding="utf-8") == before
    pinned = cli(hub, tmp_path, "pin", "--all", "--file", str(path))
    assert pinned.returncode == 0, pinned.stderr
    after = path.read_text(encoding="utf-8")
    assert after == before.replace(
        "revision: unpinned  # one", f'revision: "{sha("unpinned-one main")}" # one'
    ).replace("revision: unpinned\n", f'revision: "{sha("unpinned-two main")}"\n')
    assert cli(hub, tmp_path, "pin", "--all", "--check", "--file", str(path)).stdout == "no unpinned rows\n"
    # A named row whose repo moved on is stale for --check, and re-pinned without it.
    hub.set_main("acme", "Unpinned-One", sha("unpinned-one next"))
    stale = cli(hub, tmp_path, "pin", "unpinned-one", "--check", "--file", str(path))
    assert stale.returncode == 1 and "(would pin)" in stale.stdout
    fresh = cli(hub, tmp_path, "pin", "acme/unpinned-one", "--file", str(path))
    assert fresh.returncode == 0 and sha("unpinned-one next") in path.read_text(encoding="utf-8")
    current = cli(hub, tmp_path, "pin", "unpinned-one", "--check", "--file", str(path))
    assert current.returncode == 0 and "(current)" in current.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "not-an-id"), "'not-an-id' is not ORG/MODEL or ORG/MODEL@REVISION"),
        (("add", "acme/x@"), "'acme/x@' is not ORG/MODEL"),
        (("pin",), "name the models to pin, or pass --all"),
        (("pin", "unpinned-on"), "no row named 'unpinned-on'; did you mean 'unpinned-one'?"),
        (("pin", "--all", "--file", "missing.yaml"), "missing.yaml: no such preset table"),
    ],
    ids=["add-bad-id", "add-empty-rev", "pin-neither", "pin-unknown-row", "pin-no-table"],
)
def test_usage_errors_come_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    from click.testing import CliRunner
    from kaito_gen.cli import cli as main

    monkeypatch.chdir(tmp_path)
    table(tmp_path)
    extra = () if "--file" in args else ("--file", "models.yaml")
    result = CliRunner().invoke(main, ["presets", *args, *extra], env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_vllm_archs_file_matches_vllms_registry() -> None:
    """Drift: regenerate from the installed vLLM (.venv-vllm, which CI builds) and compare."""
    python = REPO / ".venv-vllm" / "bin" / "python"
    assert python.exists(), "build .venv-vllm (make .venv-vllm/.done) to check vllm_archs.json"
    result = subprocess.run(
        [str(python), str(REPO / "generator" / "scripts" / "gen_vllm_archs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_catalog_architecture_is_one_vllm_serves() -> None:
    from kaito_gen.catalog.hfrow import vllm_archs
    from kaito_gen.compiler.load import load_presets

    archs = vllm_archs()
    doc = json.loads((REPO / "generator" / "kaito_gen" / "catalog" / "vllm_archs.json").read_text())
    assert archs.version == doc["vllmVersion"] == "0.32.0"
    rows = load_presets().models.values()
    assert {
        m.name for m in rows if "vllm" in m.supported_engines and m.architecture not in archs.architectures
    } == set()
