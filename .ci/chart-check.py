#!/usr/bin/env python3
"""Render and lint charts/kubesync with the official Helm SDK (helm-python-sdk, Helm v4).

Installs nothing: `.ci/run` installs helm-python-sdk first. Exits non-zero when lint reports
an error (or, with --strict, a warning), when a template fails to render, or when the
rendered objects break what the chart promises (2 replicas, non-root read-only root
filesystem, probes, Lease RBAC, namespaced RBAC by default, cluster-wide on opt-in).

Usage: python3 .ci/chart-check.py [--strict] [--out DIR]
  --out DIR  also write the rendered manifests (default values) to DIR/kubesync.yaml, e.g. to
             apply them to kubesim with a server-side dry-run.
"""

from __future__ import annotations

import argparse
import os
import sys

import helm_python as helm
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "kubesync")
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

# Value sets every check runs with: the defaults, and the opt-ins people will use.
SCENARIOS = {
    "defaults": {},
    "cluster-wide": {"rbac": {"clusterWide": True}},
    "namespaces+secrets": {
        "rbac": {"namespaces": ["web", "jobs"]},
        "secretMounts": [{"name": "git", "secretName": "kubesync-git"}],
        "webhookSecret": {"secretName": "kubesync-webhook"},
    },
}


def fail(msg: str) -> None:
    print(f"FAIL: {msg}", file=sys.stderr)
    global FAILED
    FAILED = True


FAILED = False


def lint(values: dict, strict: bool, name: str) -> None:
    report = helm.lint(CHART, values, strict=strict, namespace="kubesync", kube_version="v1.33.0")
    for m in report.get("messages", []):
        sev = m.get("severity", 0)
        line = f"[{SEVERITY.get(sev, sev)}] {m.get('path', '')}: {m.get('error', '')}"
        print(f"  lint {name}: {line}")
        if sev >= 3 or (strict and sev >= 2):
            fail(f"lint ({name}): {line}")
    for e in report.get("errors", []) or []:
        fail(f"lint ({name}): {e}")


def parse_yaml(text: str) -> dict:
    """One YAML document, parsed by the Helm SDK itself (no PyYAML needed)."""
    return helm.values_from_yaml(text)


def render(chart: helm.Chart, values: dict) -> tuple[list[dict], str]:
    """The rendered objects, and the whole rendering as one multi-document YAML text."""
    out = chart.render(values=values, name="kubesync", namespace="kubesync", is_install=True)
    docs: list[dict] = []
    texts: list[str] = []
    for path, text in sorted(out.items()):
        if not path.endswith((".yaml", ".yml")) or not text.strip():
            continue
        for part in re.split(r"(?m)^---\s*$", text):
            doc = parse_yaml(part) if part.strip() else {}
            if doc:
                docs.append(doc)
                texts.append(f"# Source: {path}\n{part.strip()}\n")
    return docs, "---\n".join(texts)


def find(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def check(docs: list[dict], name: str, values: dict) -> None:
    deployments = find(docs, "Deployment")
    if len(deployments) != 1:
        fail(f"{name}: expected one Deployment, got {len(deployments)}")
        return
    dep = deployments[0]
    spec = dep["spec"]
    if spec.get("replicas") != 2:
        fail(f"{name}: Deployment replicas {spec.get('replicas')} != 2")
    pod = spec["template"]["spec"]
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        fail(f"{name}: pod must runAsNonRoot")
    c = pod["containers"][0]
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{name}: container must have a read-only root filesystem and no privilege escalation")
    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        fail(f"{name}: liveness probe must be /healthz")
    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        fail(f"{name}: readiness probe must be /readyz")
    if not c.get("resources", {}).get("requests"):
        fail(f"{name}: container needs resource requests")
    for vm in c.get("volumeMounts", []):
        if vm["mountPath"].startswith("/var/run/secrets/kubesync") and vm.get("readOnly") is not True:
            fail(f"{name}: secret mount {vm['mountPath']} must be read-only")

    cms = find(docs, "ConfigMap")
    if len(cms) != 1 or "kubesync.yaml" not in cms[0].get("data", {}):
        fail(f"{name}: expected a ConfigMap with kubesync.yaml")
    else:
        cfg = parse_yaml(cms[0]["data"]["kubesync.yaml"])
        le = cfg.get("leaderElection", {})
        if le.get("namespace") != "kubesync" or not le.get("leaseName"):
            fail(f"{name}: config must name the Lease and its namespace")
        if not cfg.get("sources"):
            fail(f"{name}: config has no sources")

    if not find(docs, "Service") or not find(docs, "ServiceAccount"):
        fail(f"{name}: expected a Service and a ServiceAccount")
    hooks = [s for s in find(docs, "Service") if s["metadata"]["name"].endswith("-webhook")]
    if len(hooks) != 1 or hooks[0]["spec"]["selector"].get("kubesync.io/leader") != "true":
        fail(f"{name}: expected a webhook Service selecting only the leader pod")

    roles = find(docs, "Role")
    lease_ok = any(
        "coordination.k8s.io" in r.get("apiGroups", []) and "leases" in r.get("resources", [])
        for role in roles
        for r in role.get("rules", [])
    )
    if not lease_ok:
        fail(f"{name}: no Lease RBAC")
    cluster_roles = find(docs, "ClusterRole")
    wide = values.get("rbac", {}).get("clusterWide", False)
    if wide and not cluster_roles:
        fail(f"{name}: clusterWide=true must render a ClusterRole")
    if not wide and cluster_roles:
        fail(f"{name}: RBAC must be namespaced unless clusterWide=true")
    if not wide:
        wanted = set(values.get("rbac", {}).get("namespaces") or ["kubesync"])
        got = {r["metadata"]["namespace"] for r in roles if not r["metadata"]["name"].endswith("-leader-election")}
        if got != wanted:
            fail(f"{name}: managed-object Roles in {sorted(got)}, expected {sorted(wanted)}")
    for d in docs:
        labels = d.get("metadata", {}).get("labels", {})
        if labels.get("app.kubernetes.io/managed-by") == "kubesync":
            fail(f"{name}: {d['kind']} carries kubesync's ownership label; the agent would manage itself")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="treat lint warnings as errors")
    parser.add_argument("--out", help="write the default rendering to DIR/kubesync.yaml")
    args = parser.parse_args()

    print(f"helm SDK {helm.helm_sdk_version()} (helm-python-sdk {helm.__version__})")
    try:
        chart = helm.Chart.load(CHART)
    except helm.HelmError as e:
        print(f"FAIL: cannot load {CHART}: {e}", file=sys.stderr)
        return 1
    with chart:
        for name, values in SCENARIOS.items():
            lint(values, args.strict, name)
            try:
                docs, text = render(chart, values)
            except helm.HelmError as e:
                fail(f"render ({name}): {e}")
                continue
            check(docs, name, values)
            print(f"  {name}: {len(docs)} objects rendered")
            if args.out and name == "defaults":
                os.makedirs(args.out, exist_ok=True)
                path = os.path.join(args.out, "kubesync.yaml")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                print(f"  wrote {path}")
    if FAILED:
        return 1
    print("chart OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
