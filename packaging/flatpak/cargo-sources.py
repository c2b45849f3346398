#!/usr/bin/env python3
"""Writes the offline cargo sources of the Flatpak build from Cargo.lock.

    python3 packaging/flatpak/cargo-sources.py           # rewrite cargo-sources.json
    python3 packaging/flatpak/cargo-sources.py --check   # exit 1 if it is stale

For every crates.io package in Cargo.lock the output has
  - an `archive` source: the .crate from static.crates.io, verified with the lock's sha256 and
    unpacked into cargo/vendor/NAME-VERSION;
  - an `inline` cargo/vendor/NAME-VERSION/.cargo-checksum.json naming that checksum (cargo checks
    the package checksum of a directory source against the lock; `files` is left empty);
and once a cargo/config.toml that replaces crates-io with that directory. The manifest sets
CARGO_HOME=/run/build/memmon/cargo, so cargo reads the config there, and the relative
`directory` resolves against /run/build/memmon.

Workspace members have no `source` and are built from the project directory itself. Anything
else (git dependencies, other registries, a package without checksum) is refused with a message:
flatpak-builder could not fetch it offline from this file. Python 3.11+ standard library only.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_LOCK = HERE.parent.parent / "Cargo.lock"
DEFAULT_OUTPUT = HERE / "cargo-sources.json"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
DOWNLOAD = "https://static.crates.io/crates"
VENDOR = "cargo/vendor"
SHA256 = re.compile(r"[0-9a-f]{64}")
CARGO_CONFIG = f"""[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "{VENDOR}"
"""


class LockError(Exception):
    pass


def generate(lock: dict) -> list[dict]:
    """The flatpak-builder sources for a parsed Cargo.lock (raises LockError on what it cannot vendor)."""
    problems: list[str] = []
    crates: dict[tuple[str, str], str] = {}
    for package in lock.get("package", []):
        name, version = package.get("name"), package.get("version")
        source, checksum = package.get("source"), package.get("checksum")
        label = f"{name} {version}"
        if not name or not version:
            problems.append(f"a package without name or version: {package!r}")
        elif source is None:
            continue  # a workspace member (or path dependency): part of the `dir` source
        elif source.startswith("git+"):
            problems.append(f"{label}: git dependency {source} is not supported; "
                            "depend on a crates.io release instead")
        elif source != CRATES_IO:
            problems.append(f"{label}: source {source} is not crates.io")
        elif checksum is None:
            problems.append(f"{label}: no checksum in Cargo.lock (regenerate it with a current cargo)")
        elif not SHA256.fullmatch(checksum):
            problems.append(f"{label}: checksum {checksum!r} is not a sha256")
        elif crates.setdefault((name, version), checksum) != checksum:
            problems.append(f"{label}: listed twice with different checksums")
    if problems:
        raise LockError("\n".join(problems))
    if not crates:
        raise LockError("no crates.io packages in Cargo.lock: is it the right file?")

    sources: list[dict] = []
    for (name, version), checksum in sorted(crates.items()):
        dest = f"{VENDOR}/{name}-{version}"
        sources.append({
            "type": "archive",
            # the .crate extension is not one flatpak-builder recognises: say what it is
            "archive-type": "tar-gzip",
            "url": f"{DOWNLOAD}/{name}/{name}-{version}.crate",
            "sha256": checksum,
            "dest": dest,
        })
        sources.append({
            "type": "inline",
            "contents": json.dumps({"package": checksum, "files": {}}),
            "dest": dest,
            "dest-filename": ".cargo-checksum.json",
        })
    sources.append({
        "type": "inline",
        "contents": CARGO_CONFIG,
        "dest": "cargo",
        "dest-filename": "config.toml",
    })
    return sources


def render(sources: list[dict]) -> str:
    return json.dumps(sources, indent=4) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="Cargo.lock to read (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if --output differs from what --lock gives")
    args = parser.parse_args()

    try:
        with args.lock.open("rb") as f:
            lock = tomllib.load(f)
        text = render(generate(lock))
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"cargo-sources: cannot read {args.lock}: {e}", file=sys.stderr)
        return 2
    except LockError as e:
        print(f"cargo-sources: {args.lock} cannot be vendored offline:\n{e}", file=sys.stderr)
        return 2

    crates = text.count('"type": "archive"')
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError as e:
            current = None
            print(f"cargo-sources: cannot read {args.output}: {e}", file=sys.stderr)
        if current != text:
            print(f"cargo-sources: {args.output} is stale for {args.lock}; "
                  "run `python3 packaging/flatpak/cargo-sources.py` and commit the result", file=sys.stderr)
            return 1
        print(f"cargo-sources: {args.output} is up to date ({crates} crates)")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"cargo-sources: wrote {args.output} ({crates} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
