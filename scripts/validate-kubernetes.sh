#!/usr/bin/env bash
# Validates the Kubernetes manifests offline against the Kubernetes JSON schemas.
#
#   scripts/validate-kubernetes.sh [DIR]      # DIR: deploy/kubernetes by default
#
# Every document of every *.yaml / *.yml file under DIR (kustomization.yaml
# excepted) is checked with check-jsonschema against the strict schema (unknown
# fields are errors) of its kind and apiVersion, from the newest Kubernetes
# version that the PyPI package kubernetes-validate ships. Both packages are
# installed, on first use only, into a virtualenv in .cache/k8s-venv; after that
# nothing is downloaded.
#
# Why the schemas are bundled first: kubernetes-validate's schema files are not
# standalone. Each `$ref`s "/api/_definitions.json#/$defs/..." against its
# `$id` https://kubernetes.io/api/..., so check-jsonschema given such a file
# would try to download https://kubernetes.io/api/_definitions.json. This script
# therefore copies into each kind's schema the definitions it uses, rewrites
# those references to local ones ("#/$defs/..."), drops the `$id`, and refuses to
# run if any reference is left that is not local. As a second guard,
# check-jsonschema runs with its HTTP(S) proxy set to a closed local port, so an
# attempt to fetch anything fails loudly instead of going out.
#
# Prints one line per document, then `kubernetes manifests: N passed, M failed`;
# exits 1 if any document failed (or none was found).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/deploy/kubernetes}"
if [[ ! -d $dir ]]; then
  echo "validate-kubernetes: no directory $dir" >&2
  exit 2
fi
dir="$(cd "$dir" && pwd)"

venv="$root/.cache/k8s-venv"
# Pinned so that a run checks against the same schemas tomorrow; bump both
# together (kubernetes-validate's version is the newest Kubernetes it knows).
packages=(check-jsonschema==0.39.0 kubernetes-validate==1.37.0)

if ! "$venv/bin/python" -c 'import check_jsonschema, kubernetes_validate' 2>/dev/null; then
  echo "installing ${packages[*]} into ${venv#"$root"/} ..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${packages[@]}"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Splits the manifests into one JSON file per document, writes the bundled
# schema of each kind, and lists them: label TAB instance TAB schema, or
# label TAB "-" TAB error for a document that cannot be checked.
"$venv/bin/python" - "$dir" "$work" >"$work/plan.tsv" <<'PY'
import json
import os
import re
import sys

import yaml
from packaging.version import Version

import kubernetes_validate

src_dir, work = sys.argv[1], sys.argv[2]

# --- the schemas: the newest version the package ships, strict ---------------
base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
layouts = {}
for name in os.listdir(base):
    m = re.fullmatch(r"v(\d+\.\d+\.\d+)-(standalone|local)-strict", name)
    if m and os.path.isdir(os.path.join(base, name)):
        # Prefer a standalone directory if a future release ships one.
        layouts.setdefault(m.group(1), []).append((m.group(2) != "standalone", name))
if not layouts:
    sys.exit(f"validate-kubernetes: no v*-strict schema directory in {base}")
k8s_version = max(layouts, key=Version)
schema_dir = os.path.join(base, sorted(layouts[k8s_version])[0][1])
with open(os.path.join(work, "header"), "w") as f:
    print(f"schemas: Kubernetes v{k8s_version}, strict "
          f"(kubernetes-validate {kubernetes_validate.__version__}, "
          f"{os.path.basename(schema_dir)}, bundled for offline use)", file=f)

definitions = None
DEFS_REF = re.compile(r"^(?:[^#]*/)?_definitions\.json(#.*)$")
LOCAL_REF = re.compile(r"^#/\$defs/([^/]+)$")


def load_definitions():
    global definitions
    if definitions is None:
        path = os.path.join(schema_dir, "_definitions.json")
        definitions = json.load(open(path))["$defs"] if os.path.exists(path) else {}
    return definitions


def rewrite(node, found):
    """Local refs for references into _definitions.json; names every $defs entry used."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                m = DEFS_REF.match(v)
                v = m.group(1) if m else v
                local = LOCAL_REF.match(v)
                if not local:
                    sys.exit(f"validate-kubernetes: schema reference {v!r} is not local; "
                             "refusing to validate online")
                found.add(local.group(1))
            out[k] = rewrite(v, found)
        return out
    if isinstance(node, list):
        return [rewrite(v, found) for v in node]
    return node


bundled = {}


def bundle(filename):
    """A self-contained copy of one kind's schema: no $id, no remote $ref."""
    if filename in bundled:
        return bundled[filename]
    path = os.path.join(schema_dir, filename)
    if not os.path.exists(path):
        bundled[filename] = None
        return None
    schema = json.load(open(path))
    schema.pop("$id", None)
    todo = set()
    schema = rewrite(schema, todo)
    defs = dict(schema.pop("$defs", {}))
    pool = load_definitions()
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        if name not in pool:
            sys.exit(f"validate-kubernetes: {filename} needs #/$defs/{name}, "
                     "which _definitions.json lacks")
        defs[name] = rewrite(pool[name], todo)
    if defs:
        schema["$defs"] = defs
    # The guard: nothing in the bundle may point outside it.
    text = json.dumps(schema)
    for ref in re.findall(r'"\$ref": "([^"]*)"', text):
        m = LOCAL_REF.match(ref)
        if not m or m.group(1) not in defs:
            sys.exit(f"validate-kubernetes: unresolved reference {ref!r} in bundled {filename}")
    if '"$id"' in text:
        sys.exit(f"validate-kubernetes: bundled {filename} still has an $id")
    out = os.path.join(work, "schemas", filename)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    bundled[filename] = out
    return out


# --- the manifests ----------------------------------------------------------
class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys as kubectl does."""


def construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)


def schema_file(doc):
    # kubernetes-validate's naming: "<kind>-<group>-<version>.json" with the
    # group cut at its first dot ("apps/v1" -> apps-v1, "v1" -> v1).
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", str(doc["apiVersion"]))
    return f"{str(doc['kind']).lower()}-{api}.json"


def line(*fields):
    print("\t".join(str(f).replace("\t", " ").replace("\n", " ") for f in fields))


files = []
for parent, dirs, names in os.walk(src_dir):
    dirs.sort()
    for name in sorted(names):
        if name.endswith((".yaml", ".yml")) and name not in (
                "kustomization.yaml", "kustomization.yml", "Kustomization"):
            files.append(os.path.join(parent, name))

count = 0
for path in files:
    rel = os.path.relpath(path, src_dir)
    try:
        docs = list(yaml.load_all(open(path), Loader=StrictLoader))
    except yaml.YAMLError as e:
        line(rel, "-", f"not valid YAML: {e}")
        continue
    for i, doc in enumerate(docs):
        if doc is None:  # an empty document, e.g. after a trailing ---
            continue
        label = f"{rel}[{i}]"
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            line(label, "-", "not a Kubernetes object (no kind/apiVersion)")
            continue
        meta = doc.get("metadata")
        name = meta.get("name", "?") if isinstance(meta, dict) else "?"
        label = f"{label} {doc['kind']}/{name} ({doc['apiVersion']})"
        schema = bundle(schema_file(doc))
        if schema is None:
            line(label, "-", f"no schema {schema_file(doc)} for Kubernetes v{k8s_version}")
            continue
        count += 1
        instance = os.path.join(work, "docs", f"{count:03d}.json")
        os.makedirs(os.path.dirname(instance), exist_ok=True)
        with open(instance, "w") as f:
            json.dump(doc, f, default=str)
        line(label, instance, schema)
PY

cat "$work/header"
passed=0
failed=0
# A closed port as the proxy: any download check-jsonschema might attempt fails.
offline=(env HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
  http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9
  ALL_PROXY=http://127.0.0.1:9 NO_PROXY= no_proxy=)
while IFS=$'\t' read -r label instance schema; do
  if [[ $instance == - ]]; then
    echo "FAIL  $label: $schema"
    failed=$((failed + 1))
    continue
  fi
  if out="$("${offline[@]}" "$venv/bin/check-jsonschema" --color never \
      --schemafile "$schema" "$instance" 2>&1)"; then
    echo "ok    $label"
    passed=$((passed + 1))
  else
    echo "FAIL  $label"
    # check-jsonschema names the temporary JSON copy; show the manifest instead.
    printf '%s\n' "$out" | sed -e "s|$instance|${label%% *}|g" -e 's/^/        /'
    failed=$((failed + 1))
  fi
done <"$work/plan.tsv"

if ((passed + failed == 0)); then
  echo "no Kubernetes manifests (*.yaml, *.yml) under $dir"
fi
echo "kubernetes manifests: $passed passed, $failed failed"
if ((failed > 0 || passed == 0)); then
  exit 1
fi
