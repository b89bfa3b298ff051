"""`kaito-adapter push|pull`: Kaito's adapter image layout against a real registry, checked by skopeo too.

Registry tests run the CLI as a subprocess against docker-registry on 127.0.0.1 (htpasswd auth, plain
HTTP; one TLS-only instance). Each test uses its own repository, so one registry serves them all.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from adapter_images import push_kaito_style_image, sha256, tar_of, write_adapter_dir
from kaito_runtime.adapter.dockerconfig import credentials_for
from kaito_runtime.adapter.errors import AdapterDirError, IntegrityError, UsageError
from kaito_runtime.adapter.layout import ANNOTATION_MODEL, build_image, check_adapter_dir, extract_layer
from kaito_runtime.adapter.reference import parse_reference
from tune_support import Registry, free_port, require_binary, run_cli

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _repo(request: pytest.FixtureRequest) -> str:
    return "adapters/" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")[:60]


def _manifest(registry: Registry, repo: str, ref: str) -> tuple[int, bytes]:
    return registry.get(f"/v2/{repo}/manifests/{ref}")


# ---------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/adapters/phi3:v1", "127.0.0.1:5000", "adapters/phi3", "v1", None),
        ("localhost/x", "localhost", "x", "latest", None),
        ("ghcr.io/org/repo.name/adapter", "ghcr.io", "org/repo.name/adapter", "latest", None),
        (
            "myacr.azurecr.io/a/b:1.0@sha256:" + "a" * 64,
            "myacr.azurecr.io",
            "a/b",
            "1.0",
            "sha256:" + "a" * 64,
        ),
        ("ubuntu", "docker.io", "library/ubuntu", "latest", None),
        ("user/adapter:v2", "docker.io", "user/adapter", "v2", None),
    ],
)
def test_image_references_parse_like_docker(
    text: str, registry: str, repository: str, tag: str, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize(
    "text", ["", "https://r.io/x:v1", "r.io/Upper/x", "r.io/x:bad tag", "r.io/x@sha256:123"]
)
def test_bad_image_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


def test_credentials_are_found_under_every_docker_key_form(tmp_path: Path) -> None:
    token = base64.b64encode(b"alice:s3cret").decode()
    ref = parse_reference("myacr.azurecr.io/adapters/x:v1")
    for key in ("myacr.azurecr.io", "https://myacr.azurecr.io/v1/", "HTTPS://MyAcr.azurecr.io"):
        creds = credentials_for({"auths": {key: {"auth": token}}}, ref, tmp_path)
        assert creds is not None
        assert (creds.username, creds.password) == ("alice", "s3cret")
        assert "s3cret" not in repr(creds)
    plain = credentials_for(
        {"auths": {"myacr.azurecr.io": {"username": "bob", "password": "pw"}}}, ref, tmp_path
    )
    assert plain is not None and plain.username == "bob"
    hub = credentials_for(
        {"auths": {"https://index.docker.io/v1/": {"auth": token}}}, parse_reference("u/a"), tmp_path
    )
    assert hub is not None and hub.username == "alice"
    assert credentials_for({"auths": {"other.io": {"auth": token}}}, ref, tmp_path) is None
    with pytest.raises(UsageError, match="credential helper"):
        credentials_for({"credHelpers": {"myacr.azurecr.io": "acr"}}, ref, tmp_path)
    with pytest.raises(UsageError, match="base64"):
        credentials_for({"auths": {"myacr.azurecr.io": {"auth": "not base64!"}}}, ref, tmp_path)


def test_the_image_is_kaitos_layout_and_reproducible(tmp_path: Path) -> None:
    adapter = check_adapter_dir(write_adapter_dir(tmp_path / "a"), require_sentinel=True)
    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    first = build_image(adapter, tmp_path / "w1", "phi-3-mini-128k-instruct")
    (tmp_path / "a" / "adapter_config.json").touch()  # a new mtime must not change the image
    second = build_image(adapter, tmp_path / "w2", "phi-3-mini-128k-instruct")
    assert first.manifest == second.manifest
    assert first.layer.digest == second.layer.digest

    manifest = json.loads(first.manifest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {ANNOTATION_MODEL: "phi-3-mini-128k-instruct"}
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ]
    layer = first.layer.path.read_bytes()
    assert sha256(layer) == manifest["layers"][0]["digest"]
    tar = gzip.decompress(layer)
    config = json.loads(first.config.path.read_bytes())
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(tar)]}
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        names = archive.getnames()
        assert names == ["data", "data/adapter_config.json", "data/adapter_model.safetensors"]
        member = archive.extractfile("data/adapter_model.safetensors")
        assert member is not None
        assert member.read() == (tmp_path / "a" / "adapter_model.safetensors").read_bytes()


def test_push_refuses_anything_but_a_complete_adapter(tmp_path: Path) -> None:
    good = write_adapter_dir(tmp_path / "good")
    with pytest.raises(AdapterDirError, match=r"no fine_tuning_completed\.txt"):
        check_adapter_dir(write_adapter_dir(tmp_path / "unfinished", sentinel=False), require_sentinel=True)
    missing = shutil.copytree(good, tmp_path / "missing")
    (missing / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterDirError, match=r"missing adapter_model\.safetensors"):
        check_adapter_dir(missing, require_sentinel=True)
    truncated = shutil.copytree(good, tmp_path / "truncated")
    data = (truncated / "adapter_model.safetensors").read_bytes()
    (truncated / "adapter_model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterDirError, match="truncated or corrupt"):
        check_adapter_dir(truncated, require_sentinel=True)
    not_peft = shutil.copytree(good, tmp_path / "not-peft")
    (not_peft / "adapter_config.json").write_text('{"r": 8}')
    with pytest.raises(AdapterDirError, match="peft_type"):
        check_adapter_dir(not_peft, require_sentinel=True)


@pytest.mark.parametrize("name", ["../escape.txt", "data/../../escape.txt"], ids=["dotdot", "nested"])
def test_unpacking_refuses_paths_that_leave_the_image_root(name: str, tmp_path: Path) -> None:
    blob = tmp_path / "layer.tar"
    tar = tar_of({"data/adapter_config.json": b"{}", name: b"pwned"})
    blob.write_bytes(tar)
    rootfs = tmp_path / "deep" / "rootfs"
    rootfs.mkdir(parents=True)
    with pytest.raises(IntegrityError, match="cannot be unpacked safely"):
        extract_layer(blob, "application/vnd.oci.image.layer.v1.tar", rootfs, sha256(tar), [1 << 20])
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep" / "escape.txt").exists()


def test_unpacking_keeps_absolute_and_linked_paths_inside_the_root(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        absolute = tarfile.TarInfo("/abs/escape.txt")
        absolute.size = 5
        archive.addfile(absolute, io.BytesIO(b"inner"))
        link = tarfile.TarInfo("data/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    blob = tmp_path / "layer.tar"
    blob.write_bytes(raw.getvalue())
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with pytest.raises(IntegrityError, match="cannot be unpacked safely"):  # the absolute symlink
        extract_layer(blob, "application/vnd.oci.image.layer.v1.tar", rootfs, None, [1 << 20])
    assert (rootfs / "abs" / "escape.txt").read_bytes() == b"inner"  # leading "/" stripped, not honoured


def test_unpacking_stops_at_the_byte_budget(tmp_path: Path) -> None:
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip.compress(tar_of({"data/big.bin": b"\0" * 100_000})))  # compresses to ~100 bytes
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    with pytest.raises(IntegrityError, match="more than --max-bytes"):
        extract_layer(blob, "application/vnd.oci.image.layer.v1.tar+gzip", rootfs, None, [10_000])


# ---------------------------------------------------------------- against the registry


def test_push_then_pull_round_trip_with_digests(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    source = write_adapter_dir(tmp_path / "results")
    image = f"{registry.host}/{_repo(request)}:v1"
    pushed = run_cli(
        "kaito-adapter",
        "push",
        source,
        image,
        "--docker-config",
        registry.docker_config,
        "--base-model",
        "phi-3",
        env=env,
    )
    assert pushed.returncode == 0, pushed.stderr
    push = json.loads(pushed.stdout)

    status, manifest_bytes = _manifest(registry, _repo(request), "v1")
    assert status == 200
    assert sha256(manifest_bytes) == push["digest"]  # what the registry stores is what we computed
    manifest = json.loads(manifest_bytes)
    assert manifest["annotations"] == {ANNOTATION_MODEL: "phi-3"}
    status, layer = registry.get(f"/v2/{_repo(request)}/blobs/{manifest['layers'][0]['digest']}")
    assert status == 200 and sha256(layer) == push["layer"]

    dest = tmp_path / "adapters" / "phi3-adapter"
    pulled = run_cli("kaito-adapter", "pull", image, dest, "--docker-config", registry.docker_config, env=env)
    assert pulled.returncode == 0, pulled.stderr
    pull = json.loads(pulled.stdout)
    assert pull["digest"] == push["digest"]
    assert pull["base_model"] == "phi-3"
    assert sorted(p.name for p in dest.iterdir()) == list(ADAPTER_FILES)
    for name in ADAPTER_FILES:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["phi3-adapter"]  # no staging leftovers

    # Pinning the digest works, and a second pull replaces the directory in one piece.
    (dest / "stale.txt").write_text("from an older pull")
    again = run_cli(
        "kaito-adapter",
        "pull",
        f"{image}@{push['digest']}",
        dest,
        "--docker-config",
        registry.docker_config,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in dest.iterdir()) == list(ADAPTER_FILES)
    assert [p.name for p in dest.parent.iterdir()] == ["phi3-adapter"]


def test_skopeo_reads_the_pushed_image_as_kaitos_puller_does(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    skopeo = require_binary("skopeo")
    source = write_adapter_dir(tmp_path / "results", seed=3)
    image = f"{registry.host}/{_repo(request)}:v1"
    pushed = run_cli(
        "kaito-adapter", "push", source, image, "--docker-config", registry.docker_config, env=env
    )
    assert pushed.returncode == 0, pushed.stderr
    auth = ["--authfile", str(registry.docker_config)]
    inspect = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", *auth, f"docker://{image}"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(inspect.stdout)
    assert info["Digest"] == json.loads(pushed.stdout)["digest"]
    assert (info["Architecture"], info["Os"], len(info["Layers"])) == ("amd64", "linux", 1)
    # Kaito's puller.sh: skopeo copy --dest-decompress docker://<ref> dir:<tmp>, then untar every layer.
    out = tmp_path / "skopeo"
    subprocess.run(
        [skopeo, "copy", "--dest-decompress", "--src-tls-verify=false", "--src-authfile", str(registry.docker_config),
         f"docker://{image}", f"dir:{out}"],
        capture_output=True, check=True,
    )  # fmt: skip
    copied = json.loads((out / "manifest.json").read_text())
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    for layer in copied["layers"]:
        with tarfile.open(out / layer["digest"].removeprefix("sha256:")) as archive:
            archive.extractall(rootfs, filter="data")
    for name in ADAPTER_FILES:
        assert (rootfs / "data" / name).read_bytes() == (source / name).read_bytes()


def test_pull_accepts_an_image_built_like_kaitos_pusher(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    require_binary("skopeo")
    files = {
        "data/adapter_config.json": json.dumps(
            {"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}
        ).encode(),
        "data/adapter_model.safetensors": (
            write_adapter_dir(tmp_path / "src") / "adapter_model.safetensors"
        ).read_bytes(),
    }
    image = f"{registry.host}/{_repo(request)}:kaito"
    digest = push_kaito_style_image(tmp_path / "layout", files, image, registry.docker_config)
    dest = tmp_path / "adapters" / "from-kaito"
    pulled = run_cli("kaito-adapter", "pull", image, dest, "--docker-config", registry.docker_config, env=env)
    assert pulled.returncode == 0, pulled.stderr
    result = json.loads(pulled.stdout)
    assert result["digest"] == digest
    assert result["base_model"] == "phi-3-mini-128k-instruct"
    for path, data in files.items():
        assert (dest / Path(path).name).read_bytes() == data


def test_pull_refuses_an_image_without_an_adapter(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    require_binary("skopeo")
    image = f"{registry.host}/{_repo(request)}:v1"
    push_kaito_style_image(
        tmp_path / "layout", {"data/README.md": b"no adapter here"}, image, registry.docker_config
    )
    dest = tmp_path / "adapters" / "x"
    pulled = run_cli("kaito-adapter", "pull", image, dest, "--docker-config", registry.docker_config, env=env)
    assert pulled.returncode == 3
    assert "is not an adapter image" in pulled.stderr
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_pull_detects_a_tampered_blob(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    source = write_adapter_dir(tmp_path / "results", seed=5)
    image = f"{registry.host}/{_repo(request)}:v1"
    pushed = run_cli(
        "kaito-adapter", "push", source, image, "--docker-config", registry.docker_config, env=env
    )
    assert pushed.returncode == 0, pushed.stderr
    layer_hex = json.loads(pushed.stdout)["layer"].removeprefix("sha256:")
    blob = (
        registry.root
        / "store"
        / "docker"
        / "registry"
        / "v2"
        / "blobs"
        / "sha256"
        / layer_hex[:2]
        / layer_hex
        / "data"
    )
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte where the registry keeps it
    blob.write_bytes(bytes(data))
    dest = tmp_path / "adapters" / "x"
    pulled = run_cli("kaito-adapter", "pull", image, dest, "--docker-config", registry.docker_config, env=env)
    assert pulled.returncode == 7, pulled.stderr
    assert "failed verification" in pulled.stderr
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_wrong_password_is_clear_and_pushes_nothing(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    source = write_adapter_dir(tmp_path / "results")
    image = f"{registry.host}/{_repo(request)}:v1"
    pushed = run_cli(
        "kaito-adapter", "push", source, image, "--docker-config", registry.wrong_password_config, env=env
    )
    assert pushed.returncode == 5
    assert "authentication to registry" in pushed.stderr and "wrong username or password" in pushed.stderr
    assert str(registry.wrong_password_config) in pushed.stderr  # says which credentials were used
    assert "Traceback" not in pushed.stderr
    assert _repo(request) not in registry.repositories()
    anonymous = run_cli("kaito-adapter", "pull", image, tmp_path / "x", env=env)
    assert anonymous.returncode == 5
    assert "requires authentication" in anonymous.stderr


def test_unfinished_training_output_is_never_pushed(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    source = write_adapter_dir(tmp_path / "results", sentinel=False)
    image = f"{registry.host}/{_repo(request)}:v1"
    pushed = run_cli(
        "kaito-adapter", "push", source, image, "--docker-config", registry.docker_config, env=env
    )
    assert pushed.returncode == 3
    assert "has no fine_tuning_completed.txt" in pushed.stderr
    assert _repo(request) not in registry.repositories()


def test_missing_tag_and_missing_repository(
    registry: Registry, tmp_path: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    source = write_adapter_dir(tmp_path / "results")
    repo = _repo(request)
    pushed = run_cli(
        "kaito-adapter",
        "push",
        source,
        f"{registry.host}/{repo}:v1",
        "--docker-config",
        registry.docker_config,
        env=env,
    )
    assert pushed.returncode == 0, pushed.stderr
    for image in (f"{registry.host}/{repo}:v2", f"{registry.host}/adapters/never-pushed:v1"):
        dest = tmp_path / "adapters" / "x"
        pulled = run_cli(
            "kaito-adapter", "pull", image, dest, "--docker-config", registry.docker_config, env=env
        )
        assert pulled.returncode == 6, pulled.stderr
        assert f"{image} not found" in pulled.stderr
        assert not dest.exists()


def test_unreachable_registry_fails_fast(tmp_path: Path, env: dict[str, str]) -> None:
    source = write_adapter_dir(tmp_path / "results")
    pushed = run_cli(
        "kaito-adapter", "push", source, f"127.0.0.1:{free_port()}/adapters/x:v1", env=env, timeout=30
    )
    assert pushed.returncode == 4
    assert "is unreachable: Connection refused" in pushed.stderr


def test_tls_only_registry(tls_registry: Registry, tmp_path: Path, env: dict[str, str]) -> None:
    source = write_adapter_dir(tmp_path / "results")
    image = f"{tls_registry.host}/adapters/tls:v1"
    creds = ("--docker-config", tls_registry.docker_config)
    plain = run_cli("kaito-adapter", "push", source, image, *creds, "--plain-http", env=env)
    assert plain.returncode == 4
    assert "only speaks TLS" in plain.stderr and "drop --plain-http" in plain.stderr
    untrusted = run_cli("kaito-adapter", "push", source, image, *creds, env=env)
    assert untrusted.returncode == 4
    assert "is not trusted" in untrusted.stderr and "--ca-file" in untrusted.stderr
    assert tls_registry.repositories() == []

    assert tls_registry.ca_file is not None
    ca = ("--ca-file", tls_registry.ca_file)
    pushed = run_cli("kaito-adapter", "push", source, image, *creds, *ca, env=env)
    assert pushed.returncode == 0, pushed.stderr
    dest = tmp_path / "pulled"
    pulled = run_cli("kaito-adapter", "pull", image, dest, *creds, *ca, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == json.loads(pushed.stdout)["digest"]
    digest = hashlib.sha256((dest / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert digest == hashlib.sha256((source / "adapter_model.safetensors").read_bytes()).hexdigest()
