#!/usr/bin/env bash
# Fetch the upstream CRDs the test suite validates against, at the commits pinned in
# ../shared/reference/crds/SOURCES.md, into DIR (default: ../shared/reference/crds).
# On the project's own machines they are already there; GitHub runners need this.
set -euo pipefail
dest="${1:-../shared/reference/crds}"
fetch() { # folder repo commit path
  mkdir -p "$dest/$1"
  curl -fsSL --retry 3 "https://raw.githubusercontent.com/$2/$3/$4" -o "$dest/$1/$(basename "$4")"
}
K=2266468104f36373ed002241afaee2d3bbc26078
A=352646f599290c3a6d2f9710fb535a7b288f88ed
W=1d927085dd81a9df9301e613f371dac5b4d16bfe
G=37ee0097cf851bc2dd7665fc081bbce61a7e836e
F=186fb3b29138ce82ff61ba1a9370b96a3dd598fe
fetch kubernetes-sigs-karpenter kubernetes-sigs/karpenter $K pkg/apis/crds/karpenter.sh_nodepools.yaml
fetch kubernetes-sigs-karpenter kubernetes-sigs/karpenter $K pkg/apis/crds/karpenter.sh_nodeclaims.yaml
fetch Azure-karpenter-provider-azure Azure/karpenter-provider-azure $A pkg/apis/crds/karpenter.azure.com_aksnodeclasses.yaml
fetch Azure-karpenter-provider-azure Azure/karpenter-provider-azure $A pkg/apis/crds/karpenter.sh_nodepools.yaml
fetch Azure-karpenter-provider-azure Azure/karpenter-provider-azure $A pkg/apis/crds/karpenter.sh_nodeclaims.yaml
fetch aws-karpenter-provider-aws aws/karpenter-provider-aws $W pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml
fetch aws-karpenter-provider-aws aws/karpenter-provider-aws $W pkg/apis/crds/karpenter.sh_nodepools.yaml
fetch aws-karpenter-provider-aws aws/karpenter-provider-aws $W pkg/apis/crds/karpenter.sh_nodeclaims.yaml
fetch argoproj-argo-cd argoproj/argo-cd $G manifests/crds/application-crd.yaml
fetch argoproj-argo-cd argoproj/argo-cd $G manifests/crds/applicationset-crd.yaml
fetch fluxcd-kustomize-controller fluxcd/kustomize-controller $F config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml
fetch kubernetes-sigs-lws kubernetes-sigs/lws 060ab4da17eea1f0865fcbd3236bb1075e2cea32 config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml
