"""kaito-gen GPU runtime: the inference server (`kaito-serve`) and the tuning/adapter tools.

Import-light on purpose: subpackages pull in torch/transformers only when they run.
"""

__all__: list[str] = []
