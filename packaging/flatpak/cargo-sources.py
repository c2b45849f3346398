#!/usr/bin/env python3
"""Writes the offline cargo sources of the Flatpak build from Cargo.lock.

    make flatpak-sources                                   # cargo fetch, then this script
    python3 packaging/flatpak/cargo-sources.py             # write target/flatpak/cargo-sources.json
    python3 packaging/flatpak/cargo-sources.py --check     # exit 1 if it is stale

The output is generated, never committed: it names the registry's download host for every crate.
That address is not written here either: it is the `dl` field of the registry's own `config.json`,
which cargo keeps in its index cache ($CARGO_HOME/registry/index/index.crates.io-*/config.json,
written by any `cargo fetch` or build; reading it needs no network). `dl` is expanded as cargo
does: its {crate}, {version}, {prefix}, {lowerprefix} and {sha256-checksum} markers are
replaced, and without any marker `/{crate}/{version}/download` is appended. --registry-config
names another config.json (a mirror's, or a test's).

For every crates.io package in Cargo.lock the output has
  - an `archive` source: the .crate from that address, verified with the lock's sha256 and
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
import os
import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_LOCK = ROOT / "Cargo.lock"
DEFAULT_OUTPUT = ROOT / "target" / "flatpak" / "cargo-sources.json"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
# The sparse index cache of crates.io (cargo's default protocol since 1.70), under $CARGO_HOME.
INDEX_CACHE_GLOB = "registry/index/index.crates.io-*/config.json"
DL_MARKERS = ("{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}")
VENDOR = "cargo/vendor"
SHA256 = re.compile(r"[0-9a-f]{64}")
CARGO_CONFIG = f"""[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "{VENDOR}"
"""


class LockError(Exception):
    pass


class RegistryError(Exception):
    pass


def find_registry_config() -> Path:
    """crates.io's config.json in cargo's index cache (the most recently written one, when
    several cargo versions left one each)."""
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    found = sorted(home.glob(INDEX_CACHE_GLOB), key=lambda p: p.stat().st_mtime, reverse=True)
    if not found:
        raise RegistryError(
            f"no crates.io index cache in {home / 'registry' / 'index'} (no index.crates.io-*/config.json).\n"
            "Run `cargo fetch --locked` once (or `make flatpak-sources`, which does), or name the "
            "registry's config.json with --registry-config.")
    return found[0]


def download_template(config: Path) -> str:
    """The `dl` field of a registry's config.json."""
    try:
        dl = json.loads(config.read_text(encoding="utf-8")).get("dl")
    except (OSError, ValueError, AttributeError) as e:
        raise RegistryError(f"cannot read the registry configuration {config}: {e}") from e
    if not isinstance(dl, str) or not re.fullmatch(r"https?://[^\s\"]+", dl):
        raise RegistryError(f"{config} has no usable `dl` download address: {dl!r}")
    return dl


def crate_url(dl: str, name: str, version: str, checksum: str) -> str:
    """A crate's download address, as cargo forms it from the registry's `dl` template."""
    if not any(marker in dl for marker in DL_MARKERS):
        return f"{dl.rstrip('/')}/{name}/{version}/download"
    prefix = {1: "1", 2: "2", 3: f"3/{name[:1]}"}.get(len(name), f"{name[:2]}/{name[2:4]}")
    for marker, value in (("{crate}", name), ("{version}", version), ("{prefix}", prefix),
                          ("{lowerprefix}", prefix.lower()), ("{sha256-checksum}", checksum)):
        dl = dl.replace(marker, value)
    return dl


def vendored(lock: dict) -> dict[tuple[str, str], str]:
    """(name, version) → sha256 of every crates.io package in a parsed Cargo.lock (raises
    LockError on what cannot be vendored)."""
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
    return crates


def generate(crates: dict[tuple[str, str], str], dl: str) -> list[dict]:
    """The flatpak-builder sources for `vendored(lock)`, downloading from the `dl` template."""
    sources: list[dict] = []
    for (name, version), checksum in sorted(crates.items()):
        dest = f"{VENDOR}/{name}-{version}"
        sources.append({
            "type": "archive",
            # the .crate extension is not one flatpak-builder recognises: say what it is
            "archive-type": "tar-gzip",
            "url": crate_url(dl, name, version, checksum),
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
    parser.add_argument("--registry-config", type=Path, metavar="CONFIG_JSON",
                        help="the registry's config.json whose `dl` gives the download address "
                             "(default: crates.io's, from cargo's index cache under $CARGO_HOME)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if --output differs from what --lock gives")
    args = parser.parse_args()

    try:
        with args.lock.open("rb") as f:
            lock = tomllib.load(f)
        crates = vendored(lock)
        config = args.registry_config or find_registry_config()
        text = render(generate(crates, download_template(config)))
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"cargo-sources: cannot read {args.lock}: {e}", file=sys.stderr)
        return 2
    except LockError as e:
        print(f"cargo-sources: {args.lock} cannot be vendored offline:\n{e}", file=sys.stderr)
        return 2
    except RegistryError as e:
        print(f"cargo-sources: no download address for the crates:\n{e}", file=sys.stderr)
        return 2

    count = text.count('"type": "archive"')
    if args.check:
        try:
            current = args.output.read_text(encoding="utf-8")
        except OSError as e:
            current = None
            print(f"cargo-sources: cannot read {args.output}: {e}", file=sys.stderr)
        if current != text:
            print(f"cargo-sources: {args.output} is stale for {args.lock} (or for {config}); "
                  "run `make flatpak-sources`", file=sys.stderr)
            return 1
        print(f"cargo-sources: {args.output} is up to date ({count} crates)")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"cargo-sources: wrote {args.output} ({count} crates, from {config})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
