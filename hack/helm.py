#!/usr/bin/env python3
"""Helm checks without a helm binary, for conformance/tests/chart.rs.

PyPI's helm-python-sdk binds Helm 4's Go SDK (a shared library, no `helm` executable), and
kubernetes-validate ships the Kubernetes JSON schemas. Run with the venv's Python (hack/helm-venv.sh
prints its path):

    python hack/helm.py lint CHART [-f VALUES]... [--strict]
    python hack/helm.py render CHART [-f VALUES]... [--name N] [--namespace NS] [--upgrade] [--kubeconfig K]
    python hack/helm.py kube-validate [--from 1.31] FILE
    python hack/helm.py versions

`lint` prints Helm's report as JSON and exits 1 on an error (or, with --strict, a warning).
`render` prints `[{"source": template, "object": {...}}, ...]` (every non-empty document, JSON) and
exits 1 with Helm's message on stderr when the values or a template are rejected.
`kube-validate` reads `render`'s output from FILE and validates every object, strictly (unknown
fields rejected), against every Kubernetes version kubernetes-validate knows from --from on; prints
`{"versions": [...], "validated": n, "no_schema": [kinds], "errors": [...]}`, exit 1 on errors.
"""

import argparse
import json
import sys

import yaml


def _values(files):
    merged = {}
    for f in files or []:
        with open(f, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
        merged = _merge(merged, doc)
    return merged


def _merge(base, over):
    """Helm's rule for several -f files: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def cmd_lint(args):
    import helm_python as helm

    report = helm.lint(args.chart, _values(args.values), strict=args.strict, namespace=args.namespace)
    print(json.dumps(report, indent=2))
    worst = max([m.get("severity", 0) for m in report.get("messages", [])] or [0])
    failed = bool(report.get("errors")) or worst >= 3 or (args.strict and worst >= 2)
    return 1 if failed else 0


def cmd_render(args):
    import helm_python as helm

    chart = helm.Chart.load(args.chart)
    opts = dict(name=args.name, namespace=args.namespace, is_install=not args.upgrade, is_upgrade=args.upgrade)
    try:
        if args.kubeconfig:
            # `lookup` reads the cluster; nothing is created.
            config = helm.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace)
            manifests = config.render(chart, _values(args.values), **opts)
        else:
            manifests = chart.render(_values(args.values), **opts)
    except helm.HelmError as e:
        print(f"helm render: {e}", file=sys.stderr)
        return 1
    out = []
    for source in sorted(manifests):
        if not source.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(manifests[source]):
            if doc:
                out.append({"source": source, "object": doc})
    print(json.dumps(out, indent=1))
    return 0


def cmd_notes(args):
    import helm_python as helm

    chart = helm.Chart.load(args.chart)
    manifests = chart.render(_values(args.values), name=args.name, namespace=args.namespace,
                             is_install=not args.upgrade, is_upgrade=args.upgrade)
    notes = [v for k, v in manifests.items() if k.endswith("NOTES.txt")]
    print("".join(notes))
    return 0


def _version_key(v):
    return tuple(int(x) for x in v.split("."))


def cmd_kube_validate(args):
    import kubernetes_validate as kv
    from kubernetes_validate import utils

    with open(args.file, encoding="utf-8") as fh:
        rendered = json.load(fh)
    versions = sorted(
        {utils.major_minor(v) for v in utils.all_versions()
         if _version_key(utils.major_minor(v)) >= _version_key(args.start)},
        key=_version_key,
    )
    errors, no_schema, validated = [], set(), 0
    for item in rendered:
        obj = item["object"]
        what = f'{item["source"]}: {obj.get("kind")} {obj.get("metadata", {}).get("name")}'
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
                validated += 1
            except utils.SchemaNotFoundError:
                no_schema.add(f'{obj.get("apiVersion")}/{obj.get("kind")}')
                break
            except utils.ValidationError as e:
                errors.append(f"{what} (Kubernetes {version}): {e.message} at {list(e.path)}")
    print(json.dumps({"versions": versions, "validated": validated, "no_schema": sorted(no_schema),
                      "errors": errors}, indent=1))
    return 1 if errors or not versions else 0


def cmd_versions(_args):
    import helm_python as helm
    import kubernetes_validate

    print(json.dumps({"helm_sdk": helm.helm_sdk_version(), "helm_python": helm.__version__,
                      "kubernetes_validate": getattr(kubernetes_validate, "__version__", "?")}))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("lint", "render", "notes"):
        s = sub.add_parser(name)
        s.add_argument("chart")
        s.add_argument("-f", "--values", action="append")
        s.add_argument("--namespace", default="ferrolb-system")
        if name == "lint":
            s.add_argument("--strict", action="store_true")
        else:
            s.add_argument("--name", default="ferrolb")
            s.add_argument("--upgrade", action="store_true")
            s.add_argument("--kubeconfig", help="render against this cluster (for `lookup`)")
    s = sub.add_parser("kube-validate")
    s.add_argument("file")
    s.add_argument("--from", dest="start", default="1.31")
    sub.add_parser("versions")
    args = p.parse_args()
    handlers = {"lint": cmd_lint, "render": cmd_render, "notes": cmd_notes,
                "kube-validate": cmd_kube_validate, "versions": cmd_versions}
    return handlers[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
