"""Tests of the manifest validator itself: valid documents pass, and every kind of mistake
the compiler could make is caught (the mutation table of shared/reference/VALIDATION.md)."""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kaito_gen.core.crdcheck import CrdCatalog, CrdLoadError, CrdViolation

from support import manifests
from support.manifests import ManifestValidator, ValidatorFactory

Doc = dict[str, Any]

# --- valid samples ---------------------------------------------------------------------------------

NODE_CLASS_REF = {
    "core": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
    "azure": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "gpu"},
    "aws": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
}


def nodepool(provider: str) -> Doc:
    doc: Doc = yaml.safe_load(
        """
        apiVersion: karpenter.sh/v1
        kind: NodePool
        metadata:
          name: default-phi-3
          labels:
            app.kubernetes.io/managed-by: kaito-gen
            karpenter.kaito.sh/workspace-name: phi-3
          annotations:
            argocd.argoproj.io/sync-wave: "-1"
        spec:
          template:
            metadata:
              labels:
                karpenter.kaito.sh/workspace-name: phi-3
                karpenter.kaito.sh/workspace-namespace: default
            spec:
              nodeClassRef: {}
              requirements:
                - {key: node.kubernetes.io/instance-type, operator: In, values: [Standard_NC24ads_A100_v4]}
                - {key: karpenter.sh/capacity-type, operator: In, values: [on-demand]}
                - {key: kubernetes.io/os, operator: In, values: [linux]}
              taints:
                - {key: nvidia.com/gpu, value: "true", effect: NoSchedule}
              expireAfter: Never
          disruption:
            consolidationPolicy: WhenEmpty
            consolidateAfter: 300s
            budgets:
              - nodes: "0"
          limits:
            nvidia.com/gpu: 1
            cpu: "24"
        """
    )
    doc["spec"]["template"]["spec"]["nodeClassRef"] = dict(NODE_CLASS_REF[provider])
    return doc


BUILTINS = yaml.safe_load_all(
    """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: phi-3, namespace: default, labels: {kaito.sh/workspace: phi-3}}
spec:
  replicas: 1
  serviceName: phi-3-headless
  podManagementPolicy: Parallel
  selector: {matchLabels: {kaito.sh/workspace: phi-3}}
  template:
    metadata:
      labels: {kaito.sh/workspace: phi-3}
      annotations: {kaito-gen.io/pod-template-hash: 0123456789abcdef}
    spec:
      nodeSelector: {karpenter.sh/nodepool: default-phi-3}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      containers:
        - name: inference
          image: registry.example/kaito-runtime:0.1.0
          ports: [{name: http, containerPort: 5000}]
          resources:
            requests: {nvidia.com/gpu: 1, memory: 64Gi}
            limits: {nvidia.com/gpu: 1}
          readinessProbe: {httpGet: {path: /health, port: 5000}, periodSeconds: 10}
          volumeMounts: [{name: dshm, mountPath: /dev/shm}]
      volumes: [{name: dshm, emptyDir: {medium: Memory}}]
---
apiVersion: v1
kind: Service
metadata: {name: phi-3, namespace: default}
spec:
  selector: {kaito.sh/workspace: phi-3}
  ports: [{name: http, port: 80, targetPort: 5000, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: phi-3-headless, namespace: default}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {kaito.sh/workspace: phi-3}
  ports: [{name: http, port: 80, targetPort: 5000}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: phi-3-tune-0123456789, namespace: default}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {karpenter.sh/do-not-disrupt: "true"}}
    spec:
      restartPolicy: Never
      containers:
        - name: tuning
          image: registry.example/kaito-runtime:0.1.0
          command: [kaito-tune, --config, /config/training_config.yaml]
          volumeMounts: [{name: config, mountPath: /config}]
      volumes: [{name: config, configMap: {name: qlora-params}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: qlora-params, namespace: default}
data:
  training_config.yaml: |
    training_config: {}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: phi-3, namespace: default}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {kaito.sh/workspace: phi-3}}
"""
)
BUILTIN_DOCS: list[Doc] = list(BUILTINS)

AKS_NODE_CLASS = yaml.safe_load(
    """
apiVersion: karpenter.azure.com/v1beta1
kind: AKSNodeClass
metadata: {name: gpu}
spec:
  imageFamily: Ubuntu2204
  osDiskSizeGB: 256
"""
)

EC2_NODE_CLASS = yaml.safe_load(
    """
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: gpu}
spec:
  role: KarpenterNodeRole-my-cluster
  amiSelectorTerms: [{alias: al2023@latest}]
  subnetSelectorTerms: [{tags: {karpenter.sh/discovery: my-cluster}}]
  securityGroupSelectorTerms: [{tags: {karpenter.sh/discovery: my-cluster}}]
  blockDeviceMappings:
    - deviceName: /dev/xvda
      rootVolume: true
      ebs: {volumeSize: 300Gi, volumeType: gp3, encrypted: true}
"""
)

ARGO_APPLICATION = yaml.safe_load(
    """
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: kaito-default-phi-3, namespace: argocd}
spec:
  project: kaito
  source: {repoURL: "https://git.example/gitops.git", targetRevision: main, path: rendered/default/phi-3}
  destination: {server: "https://kubernetes.default.svc", namespace: default}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [SkipDryRunOnMissingResource=true, ServerSideApply=true]
"""
)

ARGO_APPLICATION_SET = yaml.safe_load(
    """
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: kaito-workspaces, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
    - git:
        repoURL: "https://git.example/gitops.git"
        revision: main
        directories: [{path: "rendered/*/*"}]
  template:
    metadata: {name: "kaito-{{.path.basename}}"}
    spec:
      project: kaito
      source: {repoURL: "https://git.example/gitops.git", targetRevision: main, path: "{{.path.path}}"}
      destination: {server: "https://kubernetes.default.svc", namespace: "{{index .path.segments 1}}"}
      syncPolicy:
        automated: {prune: true}
        syncOptions: [SkipDryRunOnMissingResource=true]
"""
)

FLUX_KUSTOMIZATION = yaml.safe_load(
    """
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: kaito-apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./rendered
  prune: true
  wait: true
  timeout: 30m
  retryInterval: 2m
  sourceRef: {kind: GitRepository, name: gitops}
  dependsOn: [{name: kaito-infra}]
"""
)


@pytest.fixture(scope="module")
def validators(manifest_validator_factory: ValidatorFactory) -> dict[str, ManifestValidator]:
    return {p: manifest_validator_factory(p) for p in ("core", "azure", "aws")}


def _set(doc: Doc, path: str, value: Any) -> Doc:
    """A copy of ``doc`` with the dotted ``path`` (ints index lists) set, or deleted when value is DELETE."""
    out = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()
REQ = "spec.template.spec.requirements"


# --- valid documents pass ----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["core", "azure", "aws"])
def test_valid_nodepool_passes_each_provider_copy(
    validators: dict[str, ManifestValidator], provider: str
) -> None:
    assert validators[provider].errors(nodepool(provider)) == []


@pytest.mark.parametrize("doc", BUILTIN_DOCS, ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_valid_builtin_kinds_pass(validators: dict[str, ManifestValidator], doc: Doc) -> None:
    assert validators["core"].errors(doc) == []


@pytest.mark.parametrize(
    ("provider", "doc"),
    [
        ("azure", AKS_NODE_CLASS),
        ("aws", EC2_NODE_CLASS),
        ("core", ARGO_APPLICATION),
        ("azure", ARGO_APPLICATION_SET),
        ("aws", FLUX_KUSTOMIZATION),
    ],
    ids=lambda x: x if isinstance(x, str) else x["kind"],
)
def test_valid_custom_resources_pass(
    validators: dict[str, ManifestValidator], provider: str, doc: Doc
) -> None:
    assert validators[provider].errors(doc) == []


def test_assert_valid_accepts_a_whole_bundle(validators: dict[str, ManifestValidator]) -> None:
    bundle = [nodepool("azure"), AKS_NODE_CLASS, *BUILTIN_DOCS, ARGO_APPLICATION, FLUX_KUSTOMIZATION]
    validators["azure"].assert_valid(bundle, context="azure bundle")


def test_free_form_fields_stay_open(validators: dict[str, ManifestValidator]) -> None:
    # Argo's helm.valuesObject is x-kubernetes-preserve-unknown-fields: anything goes.
    app = _set(ARGO_APPLICATION, "spec.source.helm", {"valuesObject": {"anything": {"nested": [1, "x"]}}})
    assert validators["core"].errors(app) == []


# --- mistakes are caught -----------------------------------------------------------------------------

# (provider, document, expected "path: message" fragments)
MUTATIONS: list[tuple[str, str, Doc, list[str]]] = [
    (
        "typo-field",
        "azure",
        _set(nodepool("azure"), "spec.template.spec.requirement", []),
        ['spec.template.spec.requirement: unknown field "requirement"'],
    ),
    (
        "taint-efect",
        "core",
        _set(
            nodepool("core"), "spec.template.spec.taints.0", {"key": "nvidia.com/gpu", "efect": "NoSchedule"}
        ),
        [
            "spec.template.spec.taints[0]: 'effect' is a required property",
            'spec.template.spec.taints[0].efect: unknown field "efect"',
        ],
    ),
    (
        "bad-enum",
        "aws",
        _set(nodepool("aws"), f"{REQ}.0.operator", "Inn"),
        [f"{REQ}[0].operator: 'Inn' is not one of"],
    ),
    (
        "bad-policy",
        "core",
        _set(nodepool("core"), "spec.disruption.consolidationPolicy", "WhenIdle"),
        ["spec.disruption.consolidationPolicy: 'WhenIdle' is not one of"],
    ),
    (
        "missing-required",
        "core",
        _set(nodepool("core"), "spec.template.spec.nodeClassRef", DELETE),
        ["spec.template.spec: 'nodeClassRef' is a required property"],
    ),
    ("maximum", "core", _set(nodepool("core"), "spec.weight", 500), ["spec.weight: 500 is greater than"]),
    (
        "pattern",
        "core",
        _set(nodepool("core"), "spec.template.spec.expireAfter", "30 days"),
        ["spec.template.spec.expireAfter: '30 days' does not match"],
    ),
    (
        "type",
        "core",
        _set(nodepool("core"), "spec.disruption.budgets.0.nodes", 10),
        ["spec.disruption.budgets[0].nodes: 10 is not of type 'string'"],
    ),
    (
        "int-or-string",
        "core",
        _set(nodepool("core"), "spec.limits.cpu", True),
        ["spec.limits.cpu: True must be an integer or a string"],
    ),
    (
        "cel-restricted-domain",
        "core",
        _set(nodepool("core"), f"{REQ}.0.key", "karpenter.sh/foo"),
        [f'{REQ}[0].key: label domain "karpenter.sh" is restricted'],
    ),
    (
        "cel-restricted-template-label",
        "azure",
        _set(nodepool("azure"), "spec.template.metadata.labels", {"karpenter.sh/nodepool": "x"}),
        ['spec.template.metadata.labels: label "karpenter.sh/nodepool" is restricted'],
    ),
    (
        "cel-in-without-values",
        "core",
        _set(nodepool("core"), f"{REQ}.1.values", []),
        [f"{REQ}: requirements with operator 'In' must have a value defined"],
    ),
    (
        # cel-go fails such a rule with "no such key"; the API server rejects the object.
        "cel-in-missing-values",
        "core",
        _set(nodepool("core"), f"{REQ}.1", {"key": "example.com/x", "operator": "In"}),
        [f"{REQ}: CEL rule \"self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)\" failed"],
    ),
    (
        "cel-aws-domain",
        "aws",
        _set(nodepool("aws"), f"{REQ}.0.key", "karpenter.k8s.aws/foo"),
        [f'{REQ}[0].key: label domain "karpenter.k8s.aws" is restricted'],
    ),
    (
        "cel-azure-domain",
        "azure",
        _set(nodepool("azure"), f"{REQ}.0.key", "kubernetes.azure.com/foo"),
        [f'{REQ}[0].key: label domain "kubernetes.azure.com" is restricted'],
    ),
    (
        "provider-requires-consolidateAfter",
        "azure",
        _set(nodepool("azure"), "spec.disruption.consolidateAfter", DELETE),
        ["spec.disruption: 'consolidateAfter' is a required property"],
    ),
    (
        "provider-requires-consolidateAfter",
        "aws",
        _set(nodepool("aws"), "spec.disruption.consolidateAfter", DELETE),
        ["spec.disruption: 'consolidateAfter' is a required property"],
    ),
    (
        "ec2nodeclass-without-role",
        "aws",
        _set(EC2_NODE_CLASS, "spec.role", DELETE),
        ["spec: must specify exactly one of ['role', 'instanceProfile']"],
    ),
    (
        "cr-metadata-lables",
        "core",
        _set(nodepool("core"), "metadata.lables", {"a": "b"}),
        ['metadata.lables: unknown field "lables"'],
    ),
    (
        "cr-metadata-label-not-string",
        "core",
        _set(nodepool("core"), "metadata.labels", {"replicas": 1}),
        ["metadata.labels.replicas: 1 is not of type 'string'"],
    ),
    ("cr-without-name", "core", _set(nodepool("core"), "metadata.name", DELETE), ["metadata.name: required"]),
    (
        "argo-typo",
        "core",
        _set(ARGO_APPLICATION, "spec.syncPolicy.automated", {"prune": True, "selfheal": True}),
        ['spec.syncPolicy.automated.selfheal: unknown field "selfheal"'],
    ),
    (
        "argoset-typo",
        "core",
        _set(ARGO_APPLICATION_SET, "spec.template.spec.syncPolicy.prune", True),
        ['spec.template.spec.syncPolicy.prune: unknown field "prune"'],
    ),
    (
        "flux-missing-sourceRef",
        "core",
        _set(FLUX_KUSTOMIZATION, "spec.sourceRef", DELETE),
        ["spec: 'sourceRef' is a required property"],
    ),
    (
        "flux-interval",
        "core",
        _set(FLUX_KUSTOMIZATION, "spec.interval", "10 minutes"),
        ["spec.interval: '10 minutes' does not match"],
    ),
    (
        "removed-apiVersion",
        "core",
        _set(BUILTIN_DOCS[5], "apiVersion", "policy/v1beta1"),
        ["(root): no schema found for apiVersion 'policy/v1beta1' kind 'PodDisruptionBudget'"],
    ),
    (
        "unknown-kind",
        "core",
        {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "metadata": {"name": "x"}},
        ["(root): no schema found for apiVersion 'kaito.sh/v1beta1' kind 'Workspace'"],
    ),
    (
        "node-class-of-another-provider",
        "aws",
        AKS_NODE_CLASS,
        ["(root): no schema found for apiVersion 'karpenter.azure.com/v1beta1' kind 'AKSNodeClass'"],
    ),
    (
        "made-up-group-of-builtin-kind",
        "core",
        _set(BUILTIN_DOCS[0], "apiVersion", "apps.example.com/v1"),
        ["(root): no schema found for apiVersion 'apps.example.com/v1' kind 'StatefulSet'"],
    ),
    (
        "builtin-unknown-field-strict",
        "core",
        _set(BUILTIN_DOCS[0], "spec.template.spec.containers.0.resource", {}),
        ['spec.template.spec.containers[0].resource: unknown field "resource"'],
    ),
    (
        "builtin-type",
        "core",
        _set(BUILTIN_DOCS[0], "spec.replicas", "two"),
        ["spec.replicas: 'two' is not of type 'integer', 'null'"],
    ),
    (
        "builtin-missing-required",
        "core",
        _set(BUILTIN_DOCS[0], "spec.selector", DELETE),
        ["spec: 'selector' is a required property"],
    ),
    (
        "builtin-metadata-lables",
        "core",
        _set(BUILTIN_DOCS[4], "metadata.lables", {}),
        ['metadata.lables: unknown field "lables"'],
    ),
    ("builtin-without-name", "core", _set(BUILTIN_DOCS[4], "metadata", {}), ["metadata.name: required"]),
    ("no-apiVersion", "core", {"kind": "ConfigMap"}, ["(root): apiVersion and kind must both be set"]),
]


@pytest.mark.parametrize(
    ("provider", "doc", "expected"), [m[1:] for m in MUTATIONS], ids=[f"{m[0]}-{m[1]}" for m in MUTATIONS]
)
def test_mistakes_are_reported(
    validators: dict[str, ManifestValidator], provider: str, doc: Doc, expected: list[str]
) -> None:
    errors = validators[provider].errors(doc)
    for fragment in expected:
        assert any(e.startswith(fragment) for e in errors), f"{fragment!r} not in {errors}"
    assert len(errors) == len(expected), f"unexpected extra errors: {errors}"


@pytest.mark.parametrize(
    ("doc", "strict_in", "accepted_in"),
    [
        # The provider copies add label-domain CEL rules that core does not have …
        (_set(nodepool("aws"), f"{REQ}.0.key", "karpenter.k8s.aws/foo"), "aws", "core"),
        (_set(nodepool("azure"), f"{REQ}.0.key", "kubernetes.azure.com/foo"), "azure", "core"),
        # … and drop core's consolidateAfter default (core fills in 0s).
        (_set(nodepool("core"), "spec.disruption.consolidateAfter", DELETE), "azure", "core"),
    ],
    ids=["aws-domain", "azure-domain", "consolidateAfter"],
)
def test_provider_copies_differ_from_core(
    validators: dict[str, ManifestValidator], doc: Doc, strict_in: str, accepted_in: str
) -> None:
    assert validators[strict_in].errors(doc) != []
    assert validators[accepted_in].errors(doc) == []


def test_every_error_of_a_document_is_reported(validators: dict[str, ManifestValidator]) -> None:
    doc = _set(BUILTIN_DOCS[0], "spec.replicas", "two")
    doc = _set(doc, "spec.template.spec.containers.0.resource", {})
    doc = _set(doc, "spec.selector", DELETE)
    assert len(validators["core"].errors(doc)) == 3


def test_assert_valid_lists_each_bad_document(validators: dict[str, ManifestValidator]) -> None:
    bad_np = _set(nodepool("core"), "spec.weight", 500)
    bad_cm = _set(BUILTIN_DOCS[4], "metadata.lables", {})
    with pytest.raises(AssertionError) as info:
        validators["core"].assert_valid([BUILTIN_DOCS[1], bad_np, bad_cm], context="case x")
    text = str(info.value)
    assert "2 of 3 document(s) invalid in case x" in text
    assert "document 1 karpenter.sh/v1 NodePool default-phi-3:" in text
    assert "document 2 v1 ConfigMap default/qlora-params:" in text
    assert "spec.weight: 500 is greater than the maximum of 100" in text


def test_assert_valid_refuses_an_empty_bundle(validators: dict[str, ManifestValidator]) -> None:
    with pytest.raises(AssertionError, match="no documents to validate"):
        validators["core"].assert_valid([])


def test_validator_is_cached_per_provider(manifest_validator_factory: ValidatorFactory) -> None:
    assert manifest_validator_factory("aws") is manifest_validator_factory("aws")
    assert manifest_validator_factory("aws") is not manifest_validator_factory("azure")


# --- where the CRDs come from ------------------------------------------------------------------------


def test_crd_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAITO_GEN_CRD_DIR", str(tmp_path))
    assert manifests.locate_crd_root() == tmp_path


def test_crd_dir_from_env_that_does_not_exist_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAITO_GEN_CRD_DIR", str(tmp_path / "nope"))
    with pytest.raises(pytest.fail.Exception, match="KAITO_GEN_CRD_DIR"):
        manifests.locate_crd_root()


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_crds_skip_locally_and_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.delenv("KAITO_GEN_CRD_DIR", raising=False)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(manifests, "DEFAULT_CRD_ROOT", tmp_path / "missing")
    with pytest.raises(outcome, match="CRD schemas not found"):
        manifests.locate_crd_root()


# --- crdcheck.CrdCatalog on its own ------------------------------------------------------------------


def crd(
    kind: str, schema: str, *, group: str = "example.com", version: str = "v1", served: bool = True
) -> str:
    body = textwrap.indent(textwrap.dedent(schema).strip(), " " * 10)
    return (
        textwrap.dedent(
            f"""\
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: {kind.lower()}s.{group}
        spec:
          group: {group}
          scope: Namespaced
          names: {{kind: {kind}, plural: {kind.lower()}s, singular: {kind.lower()}, listKind: {kind}List}}
          versions:
            - name: {version}
              served: {str(served).lower()}
              storage: true
              schema:
                openAPIV3Schema:
        """
        )
        + body
        + "\n"
    )


WIDGET = crd(
    "Widget",
    """
    type: object
    properties:
      spec:
        type: object
        required: [size]
        properties:
          size: {x-kubernetes-int-or-string: true}
          mode: {type: string, enum: [a, b], default: a}
          note: {type: string, nullable: true}
          extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          items:
            type: array
            items:
              type: object
              properties:
                op: {type: string, enum: [In, NotIn]}
    """,
)
GADGET_V1 = crd(
    "Gadget", "type: object\nproperties:\n  spec: {type: object, properties: {a: {type: string}}}"
)
GADGET_V1_OTHER = crd(
    "Gadget", "type: object\nproperties:\n  spec: {type: object, properties: {b: {type: string}}}"
)


def widget(spec: Doc) -> Doc:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}


def gadget(spec: Doc) -> Doc:
    return {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_catalog_from_a_multi_document_file(tmp_path: Path) -> None:
    other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\n"
    path = write(tmp_path, "crds.yaml", f"{WIDGET}---\n{other}---\n{GADGET_V1}---\n")
    catalog = CrdCatalog.from_paths([path])
    assert catalog.kinds() == [("example.com/v1", "Gadget"), ("example.com/v1", "Widget")]
    assert catalog.covers("example.com/v1", "Widget")
    assert not catalog.covers("example.com/v2", "Widget")
    assert catalog.validate(widget({"size": 3})) == []
    assert catalog.validate(widget({"size": "50%", "items": [{"op": "In"}]})) == []


def test_catalog_from_a_kind_list(tmp_path: Path) -> None:
    items = [yaml.safe_load(WIDGET), yaml.safe_load(GADGET_V1)]
    path = write(tmp_path, "export.yml", yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    catalog = CrdCatalog.from_paths([tmp_path])
    assert catalog.kinds() == [("example.com/v1", "Gadget"), ("example.com/v1", "Widget")]
    assert CrdCatalog.from_paths([path]).kinds() == catalog.kinds()


def test_later_paths_override_earlier_ones(tmp_path: Path) -> None:
    first = write(tmp_path, "a/gadget.yaml", GADGET_V1)
    second = write(tmp_path, "b/gadget.yaml", GADGET_V1_OTHER)
    assert CrdCatalog.from_paths([first, second]).validate(gadget({"b": "x"})) == []
    assert CrdCatalog.from_paths([second, first]).validate(gadget({"a": "x"})) == []
    # Inside a directory the files load in sorted order: b/ after a/.
    assert CrdCatalog.from_paths([tmp_path]).validate(gadget({"b": "x"})) == []
    both = CrdCatalog.combine([CrdCatalog.from_paths([second]), CrdCatalog.from_paths([first])])
    assert both.validate(gadget({"a": "x"})) == []


def test_catalog_translation_details(tmp_path: Path) -> None:
    catalog = CrdCatalog.from_paths([write(tmp_path, "w.yaml", WIDGET)])

    def errors(spec: Doc) -> list[str]:
        return [str(v) for v in catalog.validate(widget(spec))]

    assert errors({"size": 1, "note": None, "extra": {"free": {"form": 1}}}) == []
    assert errors({"size": [1]}) == ["spec.size: [1] must be an integer or a string"]
    assert errors({}) == ["spec: 'size' is a required property"]
    assert errors({"size": 1, "mode": "c"}) == ["spec.mode: 'c' is not one of ['a', 'b']"]
    assert errors({"size": 1, "items": [{"op": "Inn", "x": 1}]}) == [
        "spec.items[0].op: 'Inn' is not one of ['In', 'NotIn']",
        'spec.items[0].x: unknown field "x"',
    ]
    assert errors({"size": 1, "bogus": 1}) == ['spec.bogus: unknown field "bogus"']
    # defaults are applied before validation, as the API server does
    assert catalog.with_defaults(widget({"size": 1}))["spec"]["mode"] == "a"
    bad_meta = widget({"size": 1}) | {"metadata": {"name": "w", "lables": {}}}
    assert catalog.validate(bad_meta) == [CrdViolation("metadata.lables", 'unknown field "lables"')]
    assert catalog.validate(bad_meta, check_metadata=False) == []
    unknown_top = widget({"size": 1}) | {"status2": {}}
    assert [str(v) for v in catalog.validate(unknown_top)] == ['status2: unknown field "status2"']


def test_catalog_reports_uncovered_kinds(tmp_path: Path) -> None:
    catalog = CrdCatalog.from_paths([write(tmp_path, "w.yaml", WIDGET)])
    (violation,) = catalog.validate(
        {"apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "w"}}
    )
    assert violation.path == ""
    assert "no CustomResourceDefinition serves apiVersion 'example.com/v2'" in violation.message
    assert "Widget is served as example.com/v1" in violation.message


def test_unserved_versions_are_not_covered(tmp_path: Path) -> None:
    catalog = CrdCatalog.from_paths(
        [
            write(tmp_path, "a.yaml", WIDGET),
            write(tmp_path, "b.yaml", crd("Old", "type: object", served=False)),
        ]
    )
    assert not catalog.covers("example.com/v1", "Old")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [unclosed\n", "not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\n", "no CustomResourceDefinition found"),
        (WIDGET.replace("apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1"), "is not supported"),
        (WIDGET.replace("openAPIV3Schema:", "openAPIV3SchemaX:"), "openAPIV3Schema is missing"),
        ("a: 1\na: 2\n", "not valid YAML"),
    ],
    ids=["garbage", "no-crd", "v1beta1", "no-schema", "duplicate-key"],
)
def test_crd_load_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(CrdLoadError, match=message) as info:
        CrdCatalog.from_paths([path])
    assert info.value.path == path
    assert str(info.value).startswith(str(path))


def test_missing_path_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(CrdLoadError, match="no such file or directory"):
        CrdCatalog.from_paths([tmp_path / "nope"])


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("type: objekt", "type: 'objekt' is not valid"),
        ("type: object\nproperties:\n  a: {type: string, pattern: '(('}", "pattern '((' at a"),
        ("type: object\nproperties:\n  a: {$ref: '#/x'}", "'$ref' is not allowed"),
        ("&node\ntype: object\nproperties:\n  a: *node", "contains itself"),
    ],
    ids=["type", "pattern", "ref", "recursive"],
)
def test_bad_schemas_fail_when_first_used(tmp_path: Path, schema: str, message: str) -> None:
    catalog = CrdCatalog.from_paths([write(tmp_path, "w.yaml", crd("Widget", schema))])
    with pytest.raises(CrdLoadError, match=re.escape(message)):
        catalog.validate(widget({}))


def test_shared_nodes_are_translated_once(tmp_path: Path) -> None:
    # 16 levels, each referencing the next twice through YAML aliases: 2**16 paths if each
    # reference were translated separately. Memoising by identity translates each node once,
    # so the shared node stays one object in the translated schema.
    depth = 16
    lines = ["type: object", "properties:", f"  a: &n{depth} {{type: string}}"]
    lines += [
        f"  n{i}: &n{i} {{type: object, properties: {{l: *n{i + 1}, r: *n{i + 1}}}}}"
        for i in range(depth - 1, 0, -1)
    ]
    schema = "\n".join([*lines, "  spec: {type: object, properties: {l: *n1, r: *n1}}"])
    catalog = CrdCatalog.from_paths([write(tmp_path, "w.yaml", crd("Widget", schema))])
    assert catalog.validate(widget({"l": {"r": {"l": {}}}})) == []
    assert catalog.validate(widget({"l": {"x": 1}})) == [CrdViolation("spec.l.x", 'unknown field "x"')]
    entry = catalog.entry("example.com/v1", "Widget")
    assert entry is not None
    translated = entry.validator().schema
    assert isinstance(translated, dict)
    spec = translated["properties"]["spec"]["properties"]
    assert spec["l"] is spec["r"]
    assert spec["l"]["properties"]["l"] is spec["r"]["properties"]["r"]


@pytest.mark.parametrize(
    "folder", sorted({*manifests.PROVIDER_CRD_DIRS.values(), *manifests.GITOPS_CRD_DIRS})
)
def test_translated_shared_crds_are_valid_draft4(crd_root: Path, folder: str) -> None:
    # The translator stands in for jsonschema's metaschema check (0.7 s on the ApplicationSet
    # schema alone, so it is not run on every load); prove its output is valid Draft 4.
    catalog = manifests.crd_dir_catalog(crd_root.resolve() / folder)
    assert len(catalog) >= 1
    for key in catalog.kinds():
        entry = catalog.entry(*key)
        assert entry is not None
        jsonschema.Draft4Validator.check_schema(entry.validator().schema)


def test_violation_paths_use_kubernetes_notation(validators: dict[str, ManifestValidator]) -> None:
    violations = validators["core"].catalog.validate(_set(nodepool("core"), f"{REQ}.2.operator", "Inn"))
    assert [v.path for v in violations] == ["spec.template.spec.requirements[2].operator"]
