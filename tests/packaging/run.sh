#!/usr/bin/env bash
# Desktop integration files: the shipped .desktop and AppStream files validate, broken copies of
# them do not (so the checks can fail), and the icon renders at the sizes `make icons` produces.
# The Flatpak manifest is read by flatpak-builder, its finish-args policed, its crates current.
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
# --- Flatpak (the app only; memmon-helper stays on the host). A real flatpak build needs the
# runtimes from Flathub, which this machine cannot reach: what is checked here is the manifest as
# flatpak-builder reads it, its sandbox policy, its generated vendored crates and its ids.
fp=packaging/flatpak; manifest=$PWD/$fp/$app.yml; sources=target/flatpak/cargo-sources.json
check "make flatpak-sources generates $sources from Cargo.lock" make -s flatpak-sources
check "... which is not in the tree (it names the registry's download host)" \
  bash -c "! git ls-files --error-unmatch '$sources' '$fp/cargo-sources.json' 2>/dev/null"
# flatpak-builder leaves a .flatpak-builder state directory in its cwd: run it in $tmp.
show() { (cd "$tmp" && flatpak-builder --show-manifest "$1" > "$2"); }
# Copies of the manifest keep the tree's layout: the sources file is included as ../../target/...
mkdir -p "$tmp/fp/$fp" "$tmp/fp/target/flatpak"; cp "$sources" "$tmp/fp/target/flatpak/"
variant() { local out=$tmp/fp/$fp/$1.yml; shift; "$@" "$manifest" > "$out"; echo "$out"; }
with_arg() { sed "/^finish-args:/a\\  - $1" "$2"; }
check "flatpak-builder --show-manifest accepts the manifest" show "$manifest" "$tmp/flatpak.json"
refuse "flatpak-builder --show-manifest rejects a manifest that is not valid YAML" \
  show "$(variant bad-yaml sed 's/^finish-args:$/finish-args: [/')" "$tmp/bad.json"
check "the finish-args policy accepts the shipped manifest" python3 "$fp/check-finish-args.py" "$manifest"
check "... and an unmodified copy (the copies below differ only by what they add)" \
  python3 "$fp/check-finish-args.py" "$(variant copy cat)"
for arg in --filesystem=host --socket=system-bus --talk-name=org.freedesktop.Flatpak --filesystem=home \
    --socket=session-bus --device=all --share=network; do
  refuse "the finish-args policy rejects $arg" python3 "$fp/check-finish-args.py" "$(variant policy with_arg "$arg")"
done
refuse "the finish-args policy rejects a manifest without --system-talk-name=io.github.memmon.Helper1" \
  python3 "$fp/check-finish-args.py" "$(variant policy grep -v -- '--system-talk-name=')"
refuse "the finish-args policy rejects a build with network access" python3 "$fp/check-finish-args.py" \
  "$(variant policy sed 's/^build-options:$/build-options:\n  build-args: [--share=network]/')"

check "$sources is current for Cargo.lock (cargo-sources.py --check)" python3 "$fp/cargo-sources.py" --check
sed '0,/^checksum = "[0-9a-f]*"/s//checksum = "0000000000000000000000000000000000000000000000000000000000000000"/' \
  Cargo.lock > "$tmp/Cargo.lock"
refuse "... and says it is stale for a changed Cargo.lock" python3 "$fp/cargo-sources.py" --check --lock "$tmp/Cargo.lock"
sed '0,/^source = "registry+[^"]*"/s//source = "git+https:\/\/example.invalid\/x.git#0123abc"/' Cargo.lock > "$tmp/Cargo.lock"
refuse "cargo-sources.py refuses a git dependency" \
  python3 "$fp/cargo-sources.py" --lock "$tmp/Cargo.lock" --output "$tmp/sources.json"
# The download address is the registry's `dl`, expanded as cargo does; no cache, no guess.
refuse "cargo-sources.py fails (and writes nothing) without cargo's registry configuration" \
  env CARGO_HOME="$tmp/no-cargo-home" python3 "$fp/cargo-sources.py" --output "$tmp/none.json"
check "... and says how to get it" bash -c "CARGO_HOME='$tmp/no-cargo-home' python3 '$fp/cargo-sources.py' \
  --output '$tmp/none.json' 2>&1 | grep -q 'cargo fetch' && test ! -e '$tmp/none.json'"
dl_is() { # CONFIG_DL EXPECTED_URL_OF_libc: the libc entry's url from a registry config with that dl
  mkdir -p "$tmp/cargo-home/registry/index/index.crates.io-0000000000000000"
  printf '{"dl": "%s", "api": "https://api.example.invalid"}' "$1" \
    > "$tmp/cargo-home/registry/index/index.crates.io-0000000000000000/config.json"
  CARGO_HOME=$tmp/cargo-home python3 "$fp/cargo-sources.py" --output "$tmp/dl.json" >/dev/null || return 1
  python3 -c '
import json, re, sys
lock = open("Cargo.lock").read()
version = re.search(r"name = \"libc\"\nversion = \"([^\"]+)\"", lock).group(1)
want = sys.argv[2].replace("VERSION", version)
urls = [s["url"] for s in json.load(open(sys.argv[1])) if s.get("dest") == f"cargo/vendor/libc-{version}" and "url" in s]
sys.exit(0 if urls == [want] else f"{urls} != {want}")' "$tmp/dl.json" "$2"; }
check "the crate addresses come from the registry's dl (no markers: /{crate}/{version}/download)" \
  dl_is "https://dl.example.invalid/api/v1/x" "https://dl.example.invalid/api/v1/x/libc/VERSION/download"
check "... and its {prefix}, {crate}, {version} markers are expanded" \
  dl_is "https://mirror.example.invalid/{prefix}/{crate}/{crate}-{version}.crate" \
  "https://mirror.example.invalid/li/bc/libc/libc-VERSION.crate"
# flatpak-builder only warns (exit 0) when an included sources file is missing: check it is in.
vendored_all() { python3 -c '
import json, sys
module = [m for m in json.load(open(sys.argv[1]))["modules"] if m["name"] == "memmon"][0]
vendored = json.load(open(sys.argv[2]))
sys.exit(0 if all(s in module["sources"] for s in vendored) and len(vendored) > 400 else 1)' "$1" "$sources"; }
check "the manifest includes every vendored crate of $sources" vendored_all "$tmp/flatpak.json"
mkdir -p "$tmp/fp-alone/$fp"; cp "$manifest" "$tmp/fp-alone/$fp/"
show "$tmp/fp-alone/$fp/$app.yml" "$tmp/alone.json" 2>/dev/null
refuse "... which a manifest without the generated file at ../../$sources does not" vendored_all "$tmp/alone.json"
# the app id, the installed .desktop/metainfo/icon and what they say about each other agree
ids_match() { python3 - "$1" <<'PY'
import configparser, json, re, sys, xml.etree.ElementTree as ET
m = json.load(open(sys.argv[1]))
app = m.get("id") or m.get("app-id") or sys.exit("no app id")
desktop = configparser.ConfigParser(interpolation=None); desktop.optionxform = str
desktop.read(f"assets/{app}.desktop")
entry = desktop["Desktop Entry"]
meta = ET.parse(f"assets/{app}.metainfo.xml").getroot()
cmds = [c for mod in m["modules"] for c in mod.get("build-commands", [])]
installs = {f"assets/{app}.desktop": f"/app/share/applications/{app}.desktop",
            f"assets/{app}.metainfo.xml": f"/app/share/metainfo/{app}.metainfo.xml",
            f"assets/{app}.svg": f"/app/share/icons/hicolor/scalable/apps/{app}.svg"}
ok = (entry["Icon"] == app and entry["Exec"].split()[0] == m["command"] == "memmon"
      and meta.findtext("id") == app and meta.findtext("launchable[@type='desktop-id']") == f"{app}.desktop"
      and all(any(re.fullmatch(rf"install -Dm644 {re.escape(s)} {re.escape(d)}", c) for c in cmds) for s, d in installs.items())
      and "install -Dm755 target/release/memmon /app/bin/memmon" in cmds)
sys.exit(0 if ok else 1)
PY
}
check "the manifest's app id, command and installed files match assets/ (.desktop, metainfo, icon)" ids_match "$tmp/flatpak.json"
show "$(variant no-id grep -v '^app-id:')" "$tmp/no-id.json" 2>/dev/null   # flatpak-builder accepts it
refuse "... and a manifest without app-id fails that check" ids_match "$tmp/no-id.json"
show "$(variant other-id sed 's/^app-id: .*/app-id: io.github.memmon.Other/')" "$tmp/other-id.json" 2>/dev/null
refuse "... as does one whose app id matches no desktop file" ids_match "$tmp/other-id.json"
# --- make install: the exporter's unit, its settings (kept when edited) and the rules
inst=$tmp/inst
check "make install (DESTDIR) installs the exporter's unit, settings and Prometheus rules" bash -c "
  make -s install PREFIX=/usr PROFILE=${PROFILE:-debug} DESTDIR='$inst' >/dev/null &&
  grep -qx 'ExecStart=/usr/bin/memmon-helper export' '$inst/usr/lib/systemd/system/memmon-exporter.service' &&
  cmp -s packaging/systemd/memmon-exporter.default '$inst/etc/default/memmon-exporter' &&
  cmp -s packaging/prometheus/memmon.rules.yml '$inst/usr/share/memmon/prometheus/memmon.rules.yml'"
echo 'MEMMON_EXPORTER_TOP=7' >> "$inst/etc/default/memmon-exporter"
make -s install PREFIX=/usr PROFILE="${PROFILE:-debug}" DESTDIR="$inst" >/dev/null 2>&1
check "... a second make install keeps an edited /etc/default/memmon-exporter" \
  grep -qx 'MEMMON_EXPORTER_TOP=7' "$inst/etc/default/memmon-exporter"
check "... and make uninstall removes the unit and the rules, keeping the settings" bash -c "
  make -s uninstall PREFIX=/usr DESTDIR='$inst' >/dev/null &&
  test ! -e '$inst/usr/lib/systemd/system/memmon-exporter.service' &&
  test ! -e '$inst/usr/share/memmon' && test -f '$inst/etc/default/memmon-exporter'"
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
      ./usr/lib/systemd/system/memmon-exporter.service ./etc/default/memmon-exporter \
      ./usr/share/memmon/prometheus/memmon.rules.yml \
      "./usr/share/applications/$app.desktop" "./usr/share/metainfo/$app.metainfo.xml" \
      "./usr/share/icons/hicolor/scalable/apps/$app.svg" \
      "./usr/share/icons/hicolor/128x128/apps/$app.png" "./usr/share/icons/hicolor/256x256/apps/$app.png"; do
    check "the .deb has $path" grep -q " $path\$" "$tmp/contents"
  done
  # Built by cargo-deb from app/Cargo.toml: Depends from dpkg-shlibdeps plus every library the app
  # loads by name at run time (winit/glutin/x11rb dlopen them: invisible to ldd and shlibdeps).
  dpkg-deb -f "$deb" Depends > "$tmp/depends" 2>/dev/null
  rm -rf "$tmp/deb-root" "$tmp/deb-control"; dpkg-deb -x "$deb" "$tmp/deb-root" 2>/dev/null
  dpkg-deb -e "$deb" "$tmp/deb-control" 2>/dev/null
  check "the .deb's Depends come from dpkg-shlibdeps (a versioned libc6)" grep -q 'libc6 (>= [0-9.]*)' "$tmp/depends"
  dlopened_in() { # DEPENDS_FILE: each lib*.so.N the shipped app names but does not link is in Depends
    local bin=$tmp/deb-root/usr/bin/memmon needed libs lib pkg bad=0
    needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    libs=$(strings -n 6 "$bin" | grep -oE 'lib[A-Za-z0-9_+-]+\.so\.[0-9]+' | sort -u)
    grep -qx libwayland-client.so.0 <<< "$libs" && grep -qx libxkbcommon.so.0 <<< "$libs" &&
      grep -qx libX11.so.6 <<< "$libs" || { echo "the app names none of the expected libraries"; return 1; }
    for lib in $libs; do
      grep -qx "$lib" <<< "$needed" && continue
      pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -n 1 | cut -d: -f1)
      [ -n "$pkg" ] || { echo "no installed package has $lib"; bad=1; continue; }
      tr ',|' '\n\n' < "$1" | sed 's/(.*//; s/ //g' | grep -qx "$pkg" || { echo "$lib ($pkg) is not in Depends"; bad=1; }
    done
    return $bad; }
  check "the .deb depends on every library the app loads at run time (EGL/GL, Wayland, xkbcommon, X11)" \
    dlopened_in "$tmp/depends"
  sed 's/libwayland-client0, //' "$tmp/depends" > "$tmp/depends-no-wayland"
  refuse "... which a Depends without libwayland-client0 does not satisfy" dlopened_in "$tmp/depends-no-wayland"
  for script in postinst postrm; do
    check "the .deb's $script is packaging/deb/$script, executable" \
      bash -c "cmp -s '$tmp/deb-control/$script' 'packaging/deb/$script' && test -x '$tmp/deb-control/$script'"
  done
  check "the .deb marks /etc/default/memmon-exporter as a conffile (an administrator's edits survive upgrades)" \
    grep -qx /etc/default/memmon-exporter "$tmp/deb-control/conffiles"
  check "the .deb's exporter unit runs /usr/bin/memmon-helper export" \
    grep -qx 'ExecStart=/usr/bin/memmon-helper export' "$tmp/deb-root/usr/lib/systemd/system/memmon-exporter.service"
  # (cargo-deb's tar records numeric owners only: dpkg-deb -c shows root as 0/0)
  check "binaries are 0755 root:root" bash -c "grep -E ' ./usr/bin/memmon(-helper)?\$' '$tmp/contents' | awk '{print \$1, \$2}' | grep -Ev -- '^-rwxr-xr-x (root/root|0/0)\$' | grep -q . && exit 1 || exit 0"
  refuse "nothing in the .deb is setuid or setgid" grep -Eq '^-..[sS]|^-.....[sS]' "$tmp/contents"
  check "data files are all 0644" bash -c "[ \"\$(grep -E ' ./usr/(share|lib)/.*[^/]\$' '$tmp/contents' | grep -v '^d' | awk '{print \$1}' | sort -u)\" = '-rw-r--r--' ]"
  check "dpkg -i then dpkg -P in a throw-away namespace leaves nothing behind" \
    unshare --mount --propagation private bash -c '
      set -e; t=$(mktemp -d)
      for d in usr etc var; do mkdir -p $t/$d-up $t/$d-work
        mount -t overlay overlay -o lowerdir=/$d,upperdir=$t/$d-up,workdir=$t/$d-work /$d; done
      dpkg -i "$1" >/dev/null
      test -x /usr/bin/memmon-helper && test -f /usr/share/polkit-1/actions/io.github.memmon.policy
      test -f /usr/lib/systemd/system/memmon-exporter.service && test -f /etc/default/memmon-exporter
      # Installed, not enabled: the exporter is the administrator'"'"'s to turn on.
      ! ls /etc/systemd/system/*.wants/memmon-exporter.service 2>/dev/null | grep -q .
      dpkg -P memmon >/dev/null
      ! test -e /etc/default/memmon-exporter && ! test -e /usr/lib/systemd/system/memmon-exporter.service
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
