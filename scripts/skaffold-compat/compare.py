#!/usr/bin/env python3
"""Runs Skaffold and skiff side by side over Skaffold's own example and integration configs.

Usage: compare.py SKAFFOLD_SRC SKAFFOLD_BIN SKIFF_BIN [fix|load|render] [OUT_DIR]

For every `skaffold*.yaml` under SKAFFOLD_SRC/examples and SKAFFOLD_SRC/integration (each run
in a copy of its own directory), runs the same command through both tools and compares:
- fix:    `fix --version skaffold/v4beta12` outputs, as YAML (ignoring key order, and null,
          false and empty values, which Go's YAML output omits);
- load:   whether `diagnose` accepts the file;
- render: `render --offline --digest-source=none` outputs, as sets of objects, ignoring
          document order and the run labels.
Prints one line per file and a summary; writes each tool's output under OUT_DIR.
"""
import os, shutil, subprocess, sys, tempfile
import yaml

RUN_LABELS = ("skaffold.dev/run-id", "app.kubernetes.io/managed-by")


def configs(src):
    for top in ("examples", "integration"):
        for root, _, files in os.walk(os.path.join(src, top)):
            for f in sorted(files):
                if f.startswith("skaffold") and f.endswith(".yaml"):
                    yield os.path.join(root, f)


def normalize(value):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = normalize(v)
            # Go's YAML output omits false and empty values that skiff keeps as written.
            if v is None or v == [] or v is False or v == {}:
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [normalize(v) for v in value]
    return value


def strip_run_labels(obj):
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            if k == "labels" and isinstance(v, dict):
                for label in RUN_LABELS:
                    v.pop(label, None)
                if not v:
                    del obj[k]
                    continue
            strip_run_labels(v)
    elif isinstance(obj, list):
        for v in obj:
            strip_run_labels(v)
    return obj


def docs(text):
    # Skaffold prints a note about `--digest-source=none`, and what pre-render hooks print,
    # on standard output: drop top-level lines that cannot be YAML of an object.
    def is_noise(l):
        return l.startswith("--digest-source set to") or (
            l and not l[0].isspace() and ":" not in l and not l.startswith(("-", "#")))
    text = "\n".join(l for l in text.splitlines() if not is_noise(l))
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        return ["unparsable: %s" % e]


def run(cmd, cwd, env):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return 124, "", "timeout"


def main():
    src, skaffold, skiff, mode = sys.argv[1:5]
    out_dir = sys.argv[5] if len(sys.argv) > 5 else None
    env = dict(os.environ, SKAFFOLD_UPDATE_CHECK="false", SKAFFOLD_DISABLE_TELEMETRY="true")
    env.pop("KUBECONFIG", None)
    counts = {}
    for path in configs(src):
        rel = os.path.relpath(path, src)
        with tempfile.TemporaryDirectory() as tmp:
            work = os.path.join(tmp, "p")
            shutil.copytree(os.path.dirname(path), work, symlinks=True)
            name = os.path.basename(path)
            if mode == "fix":
                args = ["fix", "-f", name, "--version", "skaffold/v4beta12"]
            elif mode == "load":
                args = ["diagnose", "-f", name, "--yaml-only"]
            else:
                args = ["render", "-f", name, "--offline", "--digest-source=none"]
            a = run([skaffold] + args, work, env)
            b = run([skiff] + args, work, env)
        if mode == "load":
            verdict = {(0, 0): "same", (1, 1): "both-fail"}.get(
                (int(a[0] != 0), int(b[0] != 0)), "skaffold-only" if a[0] == 0 else "skiff-only")
        elif a[0] != 0:
            verdict = "skaffold-fails" if b[0] != 0 else "skaffold-fails-skiff-ok"
        elif b[0] != 0:
            verdict = "skiff-fails"
        else:
            if mode == "fix":
                x, y = [normalize(d) for d in docs(a[1])], [normalize(d) for d in docs(b[1])]
                if a[1].startswith("config is already") or b[1].startswith("config is already"):
                    x, y = a[1].startswith("config is already"), b[1].startswith("config is already")
            else:
                key = lambda d: yaml.safe_dump(d, sort_keys=True)
                x = sorted(key(strip_run_labels(d)) for d in docs(a[1]))
                y = sorted(key(strip_run_labels(d)) for d in docs(b[1]))
            verdict = "same" if x == y else "different"
        counts[verdict] = counts.get(verdict, 0) + 1
        reason = ""
        if verdict in ("skiff-fails", "skiff-only", "skaffold-only"):
            reason = (b[2] if verdict != "skaffold-only" else a[2]).strip().splitlines()[-1:] 
            reason = reason[0][:160] if reason else ""
        print("%-26s %s %s" % (verdict, rel, reason), flush=True)
        if out_dir:
            base = os.path.join(out_dir, mode, rel.replace("/", "__"))
            os.makedirs(os.path.dirname(base), exist_ok=True)
            for tool, r in (("skaffold", a), ("skiff", b)):
                with open("%s.%s" % (base, tool), "w") as f:
                    f.write("exit %d\n--- stdout\n%s\n--- stderr\n%s" % r)
    print("summary:", ", ".join("%s %d" % kv for kv in sorted(counts.items())))


main()
