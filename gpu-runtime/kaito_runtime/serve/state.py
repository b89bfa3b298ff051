"""The server's shared state (the model, the engine, readiness), used by the app and the middleware."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .engine import Engine
from .loader import LoadedModel
from .metrics import Metrics
from .settings import Settings

ModelLoader = Callable[[Settings], LoadedModel]


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics
    loaded: LoadedModel | None = None
    engine: Engine | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    draining: bool = False
    load_error: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    # Called (from the loader thread) when loading fails; the CLI uses it to exit non-zero.
    on_fatal: Callable[[str], None] | None = None
