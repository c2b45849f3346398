#!/usr/bin/env bash
# Builds target/deb/memmon_<version>_<arch>.deb with cargo-deb from the binaries `make` built
# (PROFILE=release by default; PROFILE=debug for tests). The package's files, control fields and
# dependencies are in app/Cargo.toml's [package.metadata.deb]: the files `make install PREFIX=/usr`
# installs (binaries stripped), Depends computed by dpkg-shlibdeps ($auto) plus the libraries the
# app loads at run time; postinst/postrm are in this directory. This script generates the files
# that `make install` makes with sed (@BINDIR@ = /usr/bin) and the icon renders, then packages.
# Prints the path of the package on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-release}
fast=
command -v cargo-deb >/dev/null || { echo "cargo-deb missing: run scripts/setup.sh" >&2; exit 1; }
target=target/$profile
for bin in memmon memmon-helper; do
  [ -x "$target/$bin" ] || { echo "$target/$bin missing: run make (PROFILE=$profile build)" >&2; exit 1; }
done
make -s icons
gen=target/deb/generated
mkdir -p "$gen"
sed 's|@BINDIR@|/usr/bin|g' packaging/dbus/io.github.memmon.Helper1.service.in > "$gen/io.github.memmon.Helper1.service"
sed 's|@BINDIR@|/usr/bin|g' packaging/systemd/memmon-helper.service.in > "$gen/memmon-helper.service"
sed 's|@BINDIR@|/usr/bin|g' packaging/systemd/memmon-exporter.service.in > "$gen/memmon-exporter.service"
# cargo-deb reads binaries from the profile's directory: `release`, or `dev` for target/debug (it
# warns that dev builds are meant for testing only, which is what they are used for here).
case $profile in
  release) cargo_profile=release ;;
  debug) cargo_profile=dev; fast=1 ;;
  *) cargo_profile=$profile ;;
esac
mkdir -p target/deb
rm -f target/deb/memmon_*.deb
log=target/deb/cargo-deb.log
# cargo-deb names the file memmon_<Cargo version>_<arch>.deb (revision "" in the metadata) and
# prints its path on stdout.
if ! out=$(cargo deb -p memmon --no-build --profile "$cargo_profile" --strip --no-dbgsym ${fast:+--fast} \
    --output target/deb/ 2> "$log"); then
  cat "$log" >&2
  exit 1
fi
# Not news: the dev-profile notice, and that generated files under target/ are not Cargo outputs.
grep -i 'warning' "$log" | grep -v -e 'dev profile is not supported' \
  -e "'\.\./target/\(deb/generated\|icons\)/[^']*' does not match the pattern" >&2 || true
out=$(realpath --relative-to=. "$(printf '%s\n' "$out" | tail -n 1)")
test -s "$out"
echo "$out"
