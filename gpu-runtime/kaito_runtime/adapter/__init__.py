"""`kaito-adapter push|pull`: LoRA adapters as Kaito adapter images in an OCI registry.

Public surface: `check_adapter_dir`, `build_image` (layout), `open_session` (registry), `push_adapter`,
`pull_adapter`, `parse_reference` and the error tree in `kaito_runtime.adapter.errors`.
"""

from kaito_runtime.adapter.errors import AdapterError
from kaito_runtime.adapter.layout import build_image, check_adapter_dir
from kaito_runtime.adapter.pull import pull_adapter
from kaito_runtime.adapter.push import push_adapter
from kaito_runtime.adapter.reference import parse_reference
from kaito_runtime.adapter.registry import open_session

__all__ = [
    "AdapterError",
    "build_image",
    "check_adapter_dir",
    "open_session",
    "parse_reference",
    "pull_adapter",
    "push_adapter",
]
