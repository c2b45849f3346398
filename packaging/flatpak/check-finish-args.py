#!/usr/bin/env python3
"""Fails unless a Flatpak manifest grants exactly the sandbox holes Memory Monitor needs.

    python3 packaging/flatpak/check-finish-args.py [MANIFEST]     # default: the shipped manifest
    flatpak-builder --show-manifest M | python3 check-finish-args.py --json -

The manifest is read through `flatpak-builder --show-manifest` (YAML or JSON, included files
resolved), so PyYAML is not needed. Rules:
  - finish-args must be a subset of ALLOWED (nothing broader: no host/home filesystem, no whole
    system or session bus, no org.freedesktop.Flatpak, no network, no --device=all), each once;
  - every one of REQUIRED must be there (the window needs its sockets, the app its helper);
  - no build-args anywhere may give the build network access (the build is offline by design).
Exit 0 when the manifest complies, 1 when it does not (each problem on its own line), 2 when it
cannot be read.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_MANIFEST = Path(__file__).resolve().parent / "io.github.memmon.MemoryMonitor.yml"
REQUIRED = [
    "--socket=wayland",
    "--socket=fallback-x11",
    "--device=dri",
    "--share=ipc",
    # the host's memmon-helper; never --socket=system-bus
    "--system-talk-name=io.github.memmon.Helper1",
    # PNG export to the Pictures folder
    "--filesystem=xdg-pictures",
]
ALLOWED = set(REQUIRED)


def show_manifest(path: Path) -> dict:
    if shutil.which("flatpak-builder") is None:
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        raise RuntimeError("flatpak-builder is needed to read this manifest (apt-get install flatpak-builder)")
    # run elsewhere: flatpak-builder creates its .flatpak-builder state directory in the cwd
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(["flatpak-builder", "--show-manifest", str(path.resolve())],
                                cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"flatpak-builder rejects {path}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def build_args(node, where: str = "") -> list[tuple[str, str]]:
    """Every (location, arg) of every build-args list in the manifest, however deeply nested."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else key
            if key == "build-args" and isinstance(value, list):
                found += [(here, str(arg)) for arg in value]
            else:
                found += build_args(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += build_args(value, f"{where}[{i}]")
    return found


def problems(manifest: dict) -> list[str]:
    out = []
    args = manifest.get("finish-args", [])
    if not isinstance(args, list):
        return [f"finish-args is not a list: {args!r}"]
    seen = set()
    for arg in args:
        if arg in seen:
            out.append(f"finish-args: {arg} is listed more than once")
        elif arg not in ALLOWED:
            out.append(f"finish-args: {arg} is not allowed (allowed: {' '.join(REQUIRED)})")
        seen.add(arg)
    for arg in REQUIRED:
        if arg not in args:
            out.append(f"finish-args: {arg} is missing")
    for where, arg in build_args(manifest):
        if arg.startswith("--share=network"):
            out.append(f"{where}: {arg} gives the build network access; the build must be offline")
    return list(dict.fromkeys(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", nargs="?", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--json", metavar="FILE", help="read the --show-manifest JSON from FILE ('-': stdin)")
    args = parser.parse_args()
    try:
        if args.json:
            text = sys.stdin.read() if args.json == "-" else Path(args.json).read_text(encoding="utf-8")
            manifest, name = json.loads(text), args.json
        else:
            manifest, name = show_manifest(args.manifest), str(args.manifest)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"check-finish-args: {e}", file=sys.stderr)
        return 2
    if not isinstance(manifest, dict):
        print(f"check-finish-args: {name} is not a manifest object", file=sys.stderr)
        return 2
    found = problems(manifest)
    for problem in found:
        print(f"check-finish-args: {name}: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"check-finish-args: {name}: finish-args are exactly {' '.join(REQUIRED)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
