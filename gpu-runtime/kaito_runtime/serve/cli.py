"""`kaito-serve` console script.

Flags and the config file are validated first (no torch import, so mistakes fail in well
under a second with exit code 2). Then uvicorn starts, /health answers 503 while the model
loads in the background, and a load failure exits with code 1. SIGTERM/SIGINT stop
accepting connections, let in-flight requests finish (bounded by drain-seconds) and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from .settings import (
    DTYPES,
    NAME_RE,
    Settings,
    SettingsError,
    default_served_name,
    discover_adapters,
    merge_limits,
    parse_config_file,
    parse_strength_flags,
    read_api_keys,
    read_template_file,
    settings_environ,
)

log = logging.getLogger("kaito_runtime.serve")
# HTTP keep-alive: an idle connection is closed after this long (see serve()).
KEEP_ALIVE_SECONDS = 65


def _positive(lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside [{lo}, {hi}]")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kaito-serve",
        description="Kaito-compatible (/chat) and OpenAI-compatible (/v1/*) inference server with batching.",
    )
    p.add_argument("--model", required=True, help="local model directory or Hugging Face repo id")
    p.add_argument("--revision", help="hub commit SHA to download (pin it)")
    p.add_argument("--served-model-name", help="name clients use in the OpenAI 'model' field")
    p.add_argument(
        "--adapters-dir", type=Path, help="directory whose subdirectories are LoRA adapters (Kaito)"
    )
    p.add_argument(
        "--adapter-strength",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="strength in [0, 1] of one adapter (default: env var named after the adapter, else 1.0)",
    )
    p.add_argument("--config", type=Path, help="Kaito inference_config.yaml (our keys under 'transformers:')")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=_positive(1, 65535), default=5000)
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    quant = p.add_mutually_exclusive_group()
    quant.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes NF4 quantization")
    quant.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes LLM.int8 quantization")
    p.add_argument("--max-batch-size", type=_positive(1, 1024), help="rows per decode step (default 16)")
    p.add_argument(
        "--max-queue", type=_positive(0, 100_000), help="requests waiting beyond the batch (default 64)"
    )
    p.add_argument("--max-model-len", type=_positive(16, 10_000_000), help="prompt + completion token limit")
    p.add_argument(
        "--api-key-file", type=Path, help="require 'Authorization: Bearer <key>' (one key per line)"
    )
    p.add_argument("--cache-dir", type=Path, help="where hub downloads go")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--chat-template", type=Path, help="Jinja chat template file (overrides the tokenizer's)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    served = args.served_model_name or default_served_name(args.model)
    if not NAME_RE.match(served):
        raise SettingsError(f"--served-model-name {served!r}: use letters, digits and . _ - / : (max 128)")
    file_cfg = parse_config_file(args.config) if args.config else None
    cli_limits = {
        "max_batch_size": args.max_batch_size,
        "max_queue": args.max_queue,
        "max_model_len": args.max_model_len,
    }
    limits, notes = merge_limits(cli_limits, file_cfg.limits if file_cfg else {}, args.config)
    for note in notes:
        log.info("%s", note)
    template = None
    if args.chat_template:
        template = read_template_file(args.chat_template)
    elif file_cfg and file_cfg.chat_template:
        template = file_cfg.chat_template
    adapters = discover_adapters(
        args.adapters_dir, parse_strength_flags(args.adapter_strength), settings_environ(), served
    )
    if adapters and (args.load_in_4bit or args.load_in_8bit) and limits.combination_type == "svd":
        log.info("combining adapters with svd on a quantized base runs the SVD in the compute dtype")
    return Settings(
        model=args.model,
        revision=args.revision,
        served_model_name=served,
        adapters_dir=args.adapters_dir,
        adapters=adapters,
        config_path=args.config,
        host=args.host,
        port=args.port,
        dtype=args.dtype,
        quantization="4bit" if args.load_in_4bit else "8bit" if args.load_in_8bit else None,
        limits=limits,
        api_keys=read_api_keys(args.api_key_file) if args.api_key_file else (),
        cache_dir=args.cache_dir,
        trust_remote_code=args.trust_remote_code,
        chat_template=template,
        log_level=args.log_level,
        tune_cpu_threads=True,
    )


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Library chatter (per-layer bnb warnings, progress bars) would drown the useful lines.
    for noisy in ("transformers", "peft", "bitsandbytes", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR if level != "debug" else logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        print(f"kaito-serve: error: {exc}", file=sys.stderr)
        return 2
    for spec in settings.adapters:
        log.info(
            "adapter %s at %s: strength %.3g (%s)", spec.name, spec.path, spec.strength, spec.strength_source
        )
    return serve(settings)


def serve(settings: Settings) -> int:
    import os

    import uvicorn

    from .app import create_app

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # we tokenize from threads; avoid fork warnings
    app = create_app(settings)
    state = app.state.kaito
    exit_code = {"code": 0}

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # uvicorn re-raises the signal after shutdown (exit status 143); a drained shutdown is a success.
            def handle(sig: int, frame: FrameType | None) -> None:
                if self.should_exit and sig == signal.SIGINT:
                    self.force_exit = True
                    return
                log.info(
                    "received %s: draining in-flight requests (up to %.0fs)",
                    signal.Signals(sig).name,
                    settings.limits.drain_seconds,
                )
                state.draining = True
                self.should_exit = True

            previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        timeout_graceful_shutdown=max(1, int(settings.limits.drain_seconds)),
        # Longer than any client's idle expiry (httpx and the openai client: 5 s; ingress and cloud load
        # balancers: 60 s), so the client always drops an idle connection first. With equal timeouts a
        # client reuses a connection just as the server closes it, and that request dies with no response.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        lifespan="on",
    )
    server = Server(config)

    def fatal(message: str) -> None:
        print(f"kaito-serve: error: {message}", file=sys.stderr, flush=True)
        exit_code["code"] = 1
        server.should_exit = True

    state.on_fatal = fatal
    server.run()
    if exit_code["code"] == 0 and not server.started:
        return 1  # e.g. the port was taken; uvicorn has logged why
    return exit_code["code"]


if __name__ == "__main__":
    sys.exit(main())
