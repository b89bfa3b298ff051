"""Shared pydantic configuration: frozen, typo-proof, camelCase on the wire."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Frozen(BaseModel):
    """Immutable model that rejects unknown keys (a typo is an error, not a no-op)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        strict=False,
        str_strip_whitespace=False,
    )
