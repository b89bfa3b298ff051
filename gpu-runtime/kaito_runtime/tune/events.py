"""Structured progress: one JSON object per line on stdout (no heavy imports, usable before torch loads).

Events: `start`, `train_begin`, `resume`, `progress` (step, loss, tokens/s), `eval`, `checkpoint`,
`warning`, `done`, `completed_already`.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def emit(event: str, **fields: Any) -> None:
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in fields.items()}
    sys.stdout.write(json.dumps({"event": event, **clean}) + "\n")
    sys.stdout.flush()
