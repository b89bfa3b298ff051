"""Every kaito.sh kind, and what kaito-gen does with it: nothing is ever dropped silently.

Kaito v0.12's API group ``kaito.sh`` (KAITO.md §0, §4.1, §11) serves Workspace, InferenceSet,
MultiRoleInference, ModelMirror, RAGEngine and KaitoNodeClass. kaito-gen compiles Workspace and
InferenceSet; every other kind (and any kind of that group it does not know) is refused with a positioned
error naming the kind, so a document never vanishes from the output with exit 0.
"""

from __future__ import annotations

KAITO_GROUP = "kaito.sh"
COMPILED_KINDS = frozenset({"Workspace", "InferenceSet"})
# kind → why it is refused and what to do instead.
REFUSED_KINDS: dict[str, str] = {
    "MultiRoleInference": "prefill/decode disaggregation needs Kaito's controller and routing sidecar; "
    "serve the model with one Workspace",
    "ModelMirror": "model mirroring runs inside Kaito's controller; pre-stage the weights and serve them with a Workspace",
    "RAGEngine": "the RAG engine is Kaito's second operator; deploy it with Kaito's ragengine chart",
    "KaitoNodeClass": "node classes come from kaito-gen.yaml (nodeClass), not from kaito.sh objects",
}
ALL_KINDS = tuple(sorted(COMPILED_KINDS | set(REFUSED_KINDS)))


def is_kaito_group(api_version: str) -> bool:
    return api_version.partition("/")[0] == KAITO_GROUP


def refusal(kind: str) -> tuple[str, str]:
    """(message, hint) for a kaito.sh kind kaito-gen does not compile."""
    hint = REFUSED_KINDS.get(kind)
    if hint is None:
        return (
            f"kaito.sh kind {kind} is not known to kaito-gen and would produce no output",
            f"kaito-gen compiles {', '.join(sorted(COMPILED_KINDS))}; check the kind's spelling",
        )
    return f"kaito.sh kind {kind} is not compiled by kaito-gen and would produce no output", hint
