"""`kaito-tune`: the tuning Job's main container.

    kaito-tune --config /mnt/config/training_config.yaml --data /mnt/data --output /mnt/results \\
        [--model <dir|hf-id>] [--revision SHA] [--method lora|qlora] [--cache-dir /workspace/weights] \\
        [--compat-peft 0.11]

stdout: JSON lines (start, resume, progress, eval, checkpoint, warning, done); stderr: `kaito-tune: ...`
messages. For gated models huggingface_hub reads the token itself: HF_TOKEN, or the file HF_TOKEN_PATH names
(the manifests mount the Secret there).
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path

import click

from kaito_runtime.tune.errors import TuneError
from kaito_runtime.tune.output import COMPAT_CHOICES
from kaito_runtime.tune.run import TuneOptions, tune
from kaito_runtime.tune.schema import Method

EXIT_CODES = (
    "Exit codes: 0 done (or already done), 1 other failure, 2 invalid config, 3 unusable data, "
    "4 model cannot be loaded or adapted, 130 interrupted."
)


def _log(message: str) -> None:
    click.echo(f"kaito-tune: {message}", err=True)


def _quiet_libraries() -> None:
    """Progress bars and rename notices would drown the JSON progress lines in a pod log."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.option(
    "--config", "config", required=True, type=click.Path(path_type=Path), help="training_config.yaml"
)
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Directory holding the dataset.")
@click.option(
    "--output", required=True, type=click.Path(path_type=Path), help="Output root (results volume)."
)
@click.option(
    "--model", help="Base model directory or hub id [default: ModelConfig.pretrained_model_name_or_path]."
)
@click.option("--revision", help="Hub revision (commit SHA) of --model.")
@click.option(
    "--method",
    type=click.Choice([m.value for m in Method]),
    help="Cross-check: lora needs no quantization, qlora needs 4- or 8-bit [default: inferred].",
)
@click.option("--cache-dir", help="Where hub downloads go (e.g. /workspace/weights).")
@click.option(
    "--compat-peft", type=click.Choice(COMPAT_CHOICES), help="Write an adapter_config.json peft 0.11 loads."
)
@click.option(
    "--checkpoint-minutes",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Also checkpoint at least this often, whatever save_strategy says (0: off).",
)
def main(
    *,
    config: Path,
    data: Path,
    output: Path,
    model: str | None,
    revision: str | None,
    method: str | None,
    cache_dir: str | None,
    compat_peft: str | None,
    checkpoint_minutes: float,
) -> None:
    """Fine-tune a LoRA (or QLoRA) adapter as Kaito's tuning Job does, resumably."""
    _quiet_libraries()
    options = TuneOptions(
        config=config,
        data=data,
        output=output,
        model=model,
        revision=revision,
        method=Method(method) if method else None,
        cache_dir=cache_dir,
        compat_peft=compat_peft,
        checkpoint_minutes=checkpoint_minutes,
        token=os.environ.get("HF_TOKEN") or None,
    )
    try:
        tune(options, _log)
    except TuneError as exc:
        for line in exc.render().splitlines():
            click.echo(line if line.startswith(str(config)) else f"kaito-tune: {line}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _log("interrupted; the next start resumes from the latest checkpoint")
        sys.exit(130)
    except OSError as exc:  # unwritable output volume, full disk, unreadable data file
        _log(f"error: {exc}")
        sys.exit(1)
    except MemoryError:
        _log("error: out of memory (hint: lower per_device_train_batch_size or max_length, or use qlora)")
        sys.exit(1)
    except Exception as exc:  # a bug or an environment failure: say so plainly, keep the trace for a report
        if type(exc).__name__ == "OutOfMemoryError":
            _log(
                "error: GPU out of memory (hint: lower per_device_train_batch_size or max_length, or use qlora)"
            )
            sys.exit(1)
        _log(f"error: unexpected {type(exc).__name__}: {exc}")
        traceback.print_exc()
        sys.exit(1)
