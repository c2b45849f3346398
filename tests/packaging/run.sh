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
echo "packaging tests: $pass passed, $fail failed"
[ "$fail" = 0 ]
