#!/usr/bin/env bash
# Desktop integration files: the shipped .desktop and AppStream files validate, broken copies of
# them do not (so the checks can fail), and the icon renders at the sizes `make icons` produces.
set -uo pipefail
cd "$(dirname "$0")/../.."
pass=0; fail=0
check() { local name=$1; shift; if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi; }
refuse() { local name=$1; shift; if "$@" >/dev/null 2>&1; then fail=$((fail + 1)); echo "FAIL $name"; else pass=$((pass + 1)); echo "ok   $name"; fi; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
app=io.github.memmon.MemoryMonitor

check "desktop-file-validate accepts the shipped .desktop" desktop-file-validate "assets/$app.desktop"
grep -v '^Name=' "assets/$app.desktop" > "$tmp/$app.desktop"
refuse "desktop-file-validate rejects a .desktop without Name" desktop-file-validate "$tmp/$app.desktop"
sed 's/^Categories=.*/Categories=NotACategory;/' "assets/$app.desktop" > "$tmp/$app.desktop"
refuse "... and one with an unknown main category" desktop-file-validate "$tmp/$app.desktop"
check "the .desktop launches the memmon binary" grep -qx 'Exec=memmon' "assets/$app.desktop"

check "appstreamcli accepts the shipped metainfo" appstreamcli validate --no-net "assets/$app.metainfo.xml"
grep -v '<summary>' "assets/$app.metainfo.xml" > "$tmp/$app.metainfo.xml"
refuse "appstreamcli rejects metainfo without a summary" appstreamcli validate --no-net "$tmp/$app.metainfo.xml"
check "the metainfo launches the shipped desktop id" grep -q "<launchable type=\"desktop-id\">$app.desktop</launchable>" "assets/$app.metainfo.xml"

for size in 128 256; do
  rsvg-convert -w "$size" -h "$size" "assets/$app.svg" -o "$tmp/$size.png"
  check "the icon renders at ${size}px" python3 -c "
import struct, sys
b = open('$tmp/$size.png', 'rb').read(32)
w, h = struct.unpack('>II', b[16:24])
sys.exit(0 if b[:8] == b'\x89PNG\r\n\x1a\n' and (w, h) == ($size, $size) else 1)"
done
# --- the Debian package (root: installed and purged inside a throw-away overlay of /usr,/etc,/var)
if [ "$(id -u)" = 0 ]; then
  deb=$(PROFILE=${PROFILE:-debug} bash packaging/deb/build.sh) || deb=
  check "the .deb builds" test -s "$deb"
  dpkg-deb -c "$deb" > "$tmp/contents" 2>/dev/null
  for path in ./usr/bin/memmon ./usr/bin/memmon-helper \
      ./usr/share/dbus-1/system.d/io.github.memmon.Helper1.conf \
      ./usr/share/dbus-1/system-services/io.github.memmon.Helper1.service \
      ./usr/share/polkit-1/actions/io.github.memmon.policy \
      ./usr/lib/systemd/system/memmon-helper.service \
      "./usr/share/applications/$app.desktop" "./usr/share/metainfo/$app.metainfo.xml" \
      "./usr/share/icons/hicolor/scalable/apps/$app.svg" \
      "./usr/share/icons/hicolor/128x128/apps/$app.png" "./usr/share/icons/hicolor/256x256/apps/$app.png"; do
    check "the .deb has $path" grep -q " $path\$" "$tmp/contents"
  done
  check "binaries are 0755 root:root" bash -c "grep -E ' ./usr/bin/memmon(-helper)?\$' '$tmp/contents' | awk '{print \$1, \$2}' | grep -v -- '-rwxr-xr-x root/root' | grep -q . && exit 1 || exit 0"
  refuse "nothing in the .deb is setuid or setgid" grep -Eq '^-..[sS]|^-.....[sS]' "$tmp/contents"
  check "data files are all 0644" bash -c "[ \"\$(grep -E ' ./usr/(share|lib)/.*[^/]\$' '$tmp/contents' | grep -v '^d' | awk '{print \$1}' | sort -u)\" = '-rw-r--r--' ]"
  check "dpkg -i then dpkg -P in a throw-away namespace leaves nothing behind" \
    unshare --mount --propagation private bash -c '
      set -e; t=$(mktemp -d)
      for d in usr etc var; do mkdir -p $t/$d-up $t/$d-work
        mount -t overlay overlay -o lowerdir=/$d,upperdir=$t/$d-up,workdir=$t/$d-work /$d; done
      dpkg -i "$1" >/dev/null
      test -x /usr/bin/memmon-helper && test -f /usr/share/polkit-1/actions/io.github.memmon.policy
      dpkg -P memmon >/dev/null
      ! test -e /usr/bin/memmon-helper && ! test -e /usr/bin/memmon
      ! test -e /usr/share/dbus-1/system.d/io.github.memmon.Helper1.conf
      ! dpkg -s memmon >/dev/null 2>&1' _ "$deb"
  check "... and the real /usr is untouched" test ! -e /usr/share/polkit-1/actions/io.github.memmon.policy -o -n "${MEMMON_HOST_HAS_INSTALL:-}"
  if [ -n "$deb" ]; then
    MEMMON_DEB=$PWD/$deb bash tests/bus/run.sh "${PROFILE:-debug}" > "$tmp/bus-deb.log" 2>&1
    check "with the .deb installed (dpkg -i), the bus scenario passes (Full mode app as a granted user)" \
      grep -q 'bus tests: [0-9]* passed, 0 failed' "$tmp/bus-deb.log"
    grep -E '^FAIL' "$tmp/bus-deb.log" || true
  fi
fi
echo "packaging tests: $pass passed, $fail failed"
[ "$fail" = 0 ]
