#!/usr/bin/env bash
# Installs what building and testing memmon needs on a Debian 12 machine (idempotent; as root).
#   - llvm-22-dev + bpf-linker 0.13.0: link the eBPF programs
#   - rust-src for the stable toolchain: -Z build-std=core for the bpfel target
#   - tracefs mounted: tracepoints are attached through it
#   - dbus-daemon, polkitd, bpftool, util-linux, passwd, make: the hermetic system-bus tests
#   - systemd-container (systemd-nspawn): the hardened unit under a real systemd, in a container
#   - xvfb, Mesa (GL/EGL), X11 client libraries: the real-window tests (glow renderer)
#   - desktop-file-utils, appstream, librsvg2-bin: desktop-file checks and icon renders
#   - flatpak-builder: validates the Flatpak manifest (--show-manifest; no runtimes are fetched)
#   - weston (headless backend), libwayland-client0/-egl1, Mesa EGL: the real-window test on Wayland
#   - cargo-deb 3.8.0 (with dpkg-shlibdeps from dpkg-dev, strip): builds the Debian package
#   - gcc, libc6-dev: the call-site tests build their C fixture (helper/tests/fixtures/leaker.c)
#   - prometheus (the server and promtool), python3-prometheus-client (a strict OpenMetrics
#     parser): the exporter's tests and the shipped rules' unit tests
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

apt_packages=(llvm-22-dev util-linux dbus-daemon dbus-bin polkitd bpftool passwd make python3
  xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6
  desktop-file-utils appstream librsvg2-bin flatpak-builder systemd-container
  weston libwayland-client0 libwayland-egl1 libegl-mesa0 dpkg-dev binutils gcc libc6-dev
  prometheus python3-prometheus-client)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

for component in clippy rustfmt; do
  if ! rustup component list --installed --toolchain stable 2>/dev/null | grep -q "^$component"; then
    log "adding $component to the stable toolchain"
    rustup component add "$component" --toolchain stable
  fi
done
if ! rustup component list --installed --toolchain stable 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to the stable toolchain"
  rustup component add rust-src --toolchain stable
fi

if ! bpf-linker --version 2>/dev/null | grep -q '0\.13\.0'; then
  log "installing bpf-linker 0.13.0 (about 70 s)"
  LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --version 0.13.0 \
    --no-default-features --features llvm-22 --locked
fi

if [ ! -d /sys/kernel/tracing/events ] && [ "$(id -u)" = 0 ]; then
  log "mounting tracefs"
  mount -t tracefs nodev /sys/kernel/tracing
fi

if ! cargo deb --version 2>/dev/null | grep -q '3\.8\.0'; then
  log "installing cargo-deb 3.8.0"
  cargo install cargo-deb --version 3.8.0 --locked
fi
