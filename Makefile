# Installs Memory Monitor's binaries and system integration files.
#   make                      build release binaries
#   make install PREFIX=/usr  install (DESTDIR for staging); PROFILE=debug installs debug builds
#   make uninstall PREFIX=/usr
#   make flatpak-sources      target/flatpak/cargo-sources.json for flatpak-builder
PREFIX ?= /usr/local
DESTDIR ?=
PROFILE ?= release
CARGO ?= cargo
BINDIR = $(PREFIX)/bin
DATADIR = $(PREFIX)/share
# D-Bus reads system policies and services from /usr/share (and /etc); polkit reads actions from
# /usr/share/polkit-1/actions only, so these go there whatever the prefix.
DBUS_POLICYDIR ?= /usr/share/dbus-1/system.d
DBUS_SERVICEDIR ?= /usr/share/dbus-1/system-services
POLKIT_ACTIONDIR ?= /usr/share/polkit-1/actions
SYSTEMD_UNITDIR ?= /usr/lib/systemd/system
SYSCONFDIR ?= /etc
# The exporter's Prometheus rules, for a Prometheus server's rule_files:.
RULESDIR = $(DATADIR)/memmon/prometheus
TARGET = target/$(PROFILE)

APP_ID = io.github.memmon.MemoryMonitor
ICONDIR = $(DATADIR)/icons/hicolor

.PHONY: all build icons install uninstall
all: build icons

build:
	$(CARGO) build --locked $(if $(filter release,$(PROFILE)),--release,) -p memmon-helper -p memmon --bin memmon-helper --bin memmon

# PNG renders of the SVG icon (rsvg-convert, from librsvg2-bin).
icons: target/icons/128/$(APP_ID).png target/icons/256/$(APP_ID).png
target/icons/%/$(APP_ID).png: assets/$(APP_ID).svg
	mkdir -p $(dir $@)
	rsvg-convert -w $* -h $* $< -o $@

# The Flatpak's offline crate sources, from Cargo.lock (not in the tree: they name the registry's
# download host, which the generator reads from cargo's registry configuration). `cargo fetch`
# makes sure that configuration is cached: offline when the crates already are, else online.
FLATPAK_SOURCES = target/flatpak/cargo-sources.json
.PHONY: flatpak-sources
flatpak-sources:
	$(CARGO) fetch --locked --offline >/dev/null 2>&1 || $(CARGO) fetch --locked
	python3 packaging/flatpak/cargo-sources.py --output $(FLATPAK_SOURCES)

install:
	@test -x $(TARGET)/memmon-helper || { echo "run 'make' (or PROFILE=$(PROFILE) build) first"; exit 1; }
	install -D -m 0755 $(TARGET)/memmon-helper $(DESTDIR)$(BINDIR)/memmon-helper
	install -D -m 0644 packaging/dbus/io.github.memmon.Helper1.conf $(DESTDIR)$(DBUS_POLICYDIR)/io.github.memmon.Helper1.conf
	install -d $(DESTDIR)$(DBUS_SERVICEDIR) $(DESTDIR)$(SYSTEMD_UNITDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/dbus/io.github.memmon.Helper1.service.in > $(DESTDIR)$(DBUS_SERVICEDIR)/io.github.memmon.Helper1.service
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/memmon-helper.service.in > $(DESTDIR)$(SYSTEMD_UNITDIR)/memmon-helper.service
	sed 's|@BINDIR@|$(BINDIR)|g' packaging/systemd/memmon-exporter.service.in > $(DESTDIR)$(SYSTEMD_UNITDIR)/memmon-exporter.service
	chmod 0644 $(DESTDIR)$(DBUS_SERVICEDIR)/io.github.memmon.Helper1.service $(DESTDIR)$(SYSTEMD_UNITDIR)/memmon-helper.service \
	  $(DESTDIR)$(SYSTEMD_UNITDIR)/memmon-exporter.service
	@# The exporter's settings are the administrator's: an existing file is kept.
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/memmon-exporter ] || \
	  install -D -m 0644 packaging/systemd/memmon-exporter.default $(DESTDIR)$(SYSCONFDIR)/default/memmon-exporter
	install -D -m 0644 packaging/prometheus/memmon.rules.yml $(DESTDIR)$(RULESDIR)/memmon.rules.yml
	install -D -m 0644 packaging/prometheus/README.md $(DESTDIR)$(RULESDIR)/README.md
	install -D -m 0644 packaging/polkit/io.github.memmon.policy $(DESTDIR)$(POLKIT_ACTIONDIR)/io.github.memmon.policy
	@if [ -x $(TARGET)/memmon ]; then \
	  install -D -m 0755 $(TARGET)/memmon $(DESTDIR)$(BINDIR)/memmon && \
	  install -D -m 0644 assets/$(APP_ID).desktop $(DESTDIR)$(DATADIR)/applications/$(APP_ID).desktop && \
	  install -D -m 0644 assets/$(APP_ID).metainfo.xml $(DESTDIR)$(DATADIR)/metainfo/$(APP_ID).metainfo.xml && \
	  install -D -m 0644 assets/$(APP_ID).svg $(DESTDIR)$(ICONDIR)/scalable/apps/$(APP_ID).svg && \
	  for s in 128 256; do [ ! -f target/icons/$$s/$(APP_ID).png ] || \
	    install -D -m 0644 target/icons/$$s/$(APP_ID).png $(DESTDIR)$(ICONDIR)/$${s}x$$s/apps/$(APP_ID).png; done; \
	else echo "note: $(TARGET)/memmon not built: installing the helper only"; fi
	@if [ -z "$(DESTDIR)" ] && command -v dbus-send >/dev/null && [ -S /run/dbus/system_bus_socket ]; then \
	  dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig || true; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/memmon-helper $(DESTDIR)$(BINDIR)/memmon \
	  $(DESTDIR)$(DATADIR)/applications/$(APP_ID).desktop \
	  $(DESTDIR)$(DATADIR)/metainfo/$(APP_ID).metainfo.xml \
	  $(DESTDIR)$(ICONDIR)/scalable/apps/$(APP_ID).svg \
	  $(DESTDIR)$(ICONDIR)/128x128/apps/$(APP_ID).png $(DESTDIR)$(ICONDIR)/256x256/apps/$(APP_ID).png \
	  $(DESTDIR)$(DBUS_POLICYDIR)/io.github.memmon.Helper1.conf \
	  $(DESTDIR)$(DBUS_SERVICEDIR)/io.github.memmon.Helper1.service \
	  $(DESTDIR)$(SYSTEMD_UNITDIR)/memmon-helper.service \
	  $(DESTDIR)$(SYSTEMD_UNITDIR)/memmon-exporter.service \
	  $(DESTDIR)$(RULESDIR)/memmon.rules.yml $(DESTDIR)$(RULESDIR)/README.md \
	  $(DESTDIR)$(POLKIT_ACTIONDIR)/io.github.memmon.policy
	@# $(SYSCONFDIR)/default/memmon-exporter holds the administrator's settings: kept.
	-rmdir $(DESTDIR)$(RULESDIR) $(DESTDIR)$(DATADIR)/memmon 2>/dev/null
