#!/usr/bin/env bash
# Builds target/deb/memmon_<version>_<arch>.deb with dpkg-deb from the binaries `make` built
# (PROFILE=release by default; PROFILE=debug for tests). Files are staged by `make install
# DESTDIR=…`, so the package holds exactly what `make install` installs; binaries are stripped.
# Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-release}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for bin in memmon memmon-helper; do
  [ -x "target/$profile/$bin" ] || { echo "target/$profile/$bin missing: run make (PROFILE=$profile build)" >&2; exit 1; }
done
make -s icons
make -s install PREFIX=/usr DESTDIR="$stage" PROFILE="$profile" >/dev/null
strip --strip-unneeded "$stage/usr/bin/memmon" "$stage/usr/bin/memmon-helper"
install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: memmon
Version: $version
Architecture: $arch
Maintainer: Memory Monitor developers <dev@memmon.invalid>
Installed-Size: $size
Depends: libc6, libgcc-s1, dbus, polkitd | policykit-1, libgl1, libegl1
Recommends: libxkbcommon-x11-0, libxcursor1, libxrandr2, libxi6
Section: admin
Priority: optional
Homepage: https://github.com/memmon/memmon
Description: see which processes use memory and how that changes
 Memory Monitor shows the processes using the most memory in a sortable grid
 and plots any process's resident memory over time. Its privileged helper,
 started on demand by D-Bus and authorised through polkit, counts every
 process's mmap, munmap and brk activity with eBPF.
CONTROL
# Maintainer scripts: make a running bus pick up the new policy and activation file, and stop a
# running helper so the next call starts the new (or no) binary — clients reconnect within a
# second; do nothing (and fail nothing) where no bus runs, e.g. in a chroot.
for script in postinst postrm; do
  cat > "$stage/DEBIAN/$script" <<'SCRIPT'
#!/bin/sh
set -e
if [ -S /run/dbus/system_bus_socket ] && command -v dbus-send >/dev/null 2>&1; then
  dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.ReloadConfig >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  systemctl stop memmon-helper.service >/dev/null 2>&1 || true
fi
pkill -TERM -f '^/usr/bin/memmon-helper serve' >/dev/null 2>&1 || true
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database -q /usr/share/applications || true
fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then
  gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
fi
exit 0
SCRIPT
  chmod 0755 "$stage/DEBIAN/$script"
done
mkdir -p target/deb
out="target/deb/memmon_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz -z3 --build "$stage" "$out" >/dev/null
echo "$out"
