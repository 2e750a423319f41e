# berth: one entry point for building, testing and benchmarking.
#
#   make deps      install the Debian packages the build and the tests need (idempotent)
#   make fixtures  build the test fixtures under build/ (cached)
#   make build     cargo build --release --workspace
#   make test      deps + fixtures + build, then fmt, clippy and the whole test suite
#   make stress    3 parallel loops of 1,000 short `berth run`s: zero failures
#   make demo      run a container from the busybox fixture and show what happened
#   make bench     berth vs runc vs crun (bench/run.sh → bench/results.md)
#   make test-kernels  the test binaries in VMs with Linux 5.10, 6.1, 6.12 ×
#                  cgroup v2, v1, hybrid (docs/kernels.md); KERNELS=, CGROUPS=,
#                  TESTS= pick rows and binaries, BATS= adds runc's bats files
#   make install   berth and berth-worker into $(PREFIX)/bin
#
# Expects Debian 12 (or 11) as root; Rust comes from rustup and is never
# installed here.
#
# Fixture paths are a contract with the tests, which find them through
# $BERTH_FIXTURES (= build/):
#   build/rootfs/busybox     busybox-static rootfs
#   build/rootfs/bookworm    debootstrap'd Debian 12 (glibc 2.36) rootfs with curl and git
#   build/probes/            berth-probe (glibc), berth-probe-musl, berth-probe-32 (i386)
# Both rootfses also carry the three probes at /usr/bin/.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:
# Prerequisites run in the order written (deps before fixtures before build
# ...), even under -j; cargo and debootstrap parallelise on their own.
.NOTPARALLEL:

# rustup installs cargo in ~/.cargo/bin, which a non-login shell (CI,
# `vagrant provision`) may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO    ?= cargo
PREFIX   ?= /usr/local
BUILD    := $(CURDIR)/build
ROOTFS   := $(BUILD)/rootfs
PROBES   := $(BUILD)/probes
FIXTURES := $(CURDIR)/integration/fixtures
PROBE_C  := $(CURDIR)/integration/probe/berth-probe.c
# Honour CARGO_TARGET_DIR like cargo does (the binaries the tests drive).
TARGET   := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE  := $(TARGET)/release

# ---------------------------------------------------------------- deps

# Build: libseccomp-dev + pkg-config (the libseccomp crate links it), a C
# toolchain for the probes (gcc-multilib for -m32, musl-tools for musl-gcc).
# Fixtures: busybox-static, debootstrap. Tests: runc and crun (behaviour to
# compare with), strace, iproute2, jq, uidmap (newuidmap for user namespace
# tests), procps and util-linux (ps, unshare, findmnt for tests and bench),
# docker-registry and skopeo (the worker's local registry tests), dnsmasq-base (the DNS
# proxy bench compares against dnsmasq as a forwarder).
DEPS := build-essential pkg-config libseccomp-dev gcc-multilib musl-tools \
        busybox-static debootstrap ca-certificates curl git \
        runc crun strace iproute2 jq uidmap procps util-linux \
        docker-registry skopeo dnsmasq-base
# The container engines that drive berth as their OCI runtime (issue 5).
# Their useful Recommends are named explicitly (docker needs iptables;
# podman slirp4netns, catatonit, fuse-overlayfs, CNI plugins) rather than
# pulling all of them (needrestart, apparmor, ...).
DEPS_CLIENTS := podman containerd docker.io iptables slirp4netns catatonit \
                fuse-overlayfs containernetworking-plugins

# Install only what is missing, so a second `make deps` costs one
# dpkg-query. `apt-get update` runs only when the package lists are missing
# or older than an hour, so deps-base then deps-clients update once. Service
# start-ups are refused
# (policy-rc.d exit 101): the tests start daemons themselves, and a box
# without systemd would otherwise fail the postinst scripts.
define apt_install
	missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -q '^install ok installed$$' || echo "$$p"; \
	done); \
	if [ -z "$$missing" ]; then echo "deps: $(2) installed"; exit 0; fi; \
	echo "deps: installing" $$missing; \
	if [ "$$(id -u)" -ne 0 ]; then echo "deps: need root to install:" $$missing >&2; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	policy=/usr/sbin/policy-rc.d; added_policy=; \
	if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; chmod +x $$policy; added_policy=1; fi; \
	trap '[ -z "$$added_policy" ] || rm -f '$$policy EXIT; \
	if [ -z "$$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 -print -quit)" ]; then \
	    apt-get update -q; \
	fi; \
	apt-get install -y -q $(3) $$missing
endef

# The bench's extras (make bench only): matplotlib draws bench/*.svg,
# linux-perf profiles a start (docs/performance.md).
DEPS_BENCH := python3-matplotlib linux-perf

.PHONY: deps deps-base deps-clients deps-bench
deps: deps-base deps-clients

deps-base:
	@$(call apt_install,$(DEPS),build and test packages,--no-install-recommends)

deps-clients: deps-base
	@$(call apt_install,$(DEPS_CLIENTS),container clients,--no-install-recommends)

deps-bench: deps-base
	@$(call apt_install,$(DEPS_BENCH),bench tools,--no-install-recommends)

# ------------------------------------------------------------- fixtures

PROBE_NAMES    := berth-probe berth-probe-musl berth-probe-32
PROBE_BINS     := $(addprefix $(PROBES)/,$(PROBE_NAMES))
PROBE_CFLAGS   := -O2 -Wall -Wextra -Werror -static
BUSYBOX_STAMP  := $(ROOTFS)/busybox/etc/berth-fixture
BOOKWORM_STAMP := $(ROOTFS)/bookworm/etc/berth-fixture

.PHONY: fixtures probes rootfs-busybox rootfs-bookworm
fixtures: probes rootfs-busybox rootfs-bookworm \
          $(foreach r,busybox bookworm,$(addprefix $(ROOTFS)/$(r)/usr/bin/,$(PROBE_NAMES)))

# One C source, three ABIs: x86_64 glibc, x86_64 musl, i386 glibc (the
# 32-bit one is how the tests reach seccomp's x86 arch). Rebuilt when the .c
# changes, independently of the rootfs caches.
probes: $(PROBE_BINS)
$(PROBES)/berth-probe: $(PROBE_C)
	@mkdir -p $(@D)
	gcc $(PROBE_CFLAGS) -pthread -o $@ $<
$(PROBES)/berth-probe-musl: $(PROBE_C)
	@mkdir -p $(@D)
	musl-gcc $(PROBE_CFLAGS) -o $@ $<
$(PROBES)/berth-probe-32: $(PROBE_C)
	@mkdir -p $(@D)
	gcc -m32 $(PROBE_CFLAGS) -pthread -o $@ $<

# The busybox rootfs takes a second, so it is simply rebuilt in place
# (the script is idempotent) whenever the script changes.
rootfs-busybox: $(BUSYBOX_STAMP)
$(BUSYBOX_STAMP): $(FIXTURES)/busybox.sh
	$(FIXTURES)/busybox.sh $(ROOTFS)/busybox
	echo "built-by=integration/fixtures/busybox.sh" > $@

# debootstrap takes minutes: built once, atomically, and kept while its stamp
# exists (an edit to the script does not force a rebuild; `make
# clean-fixtures` does).
rootfs-bookworm: $(BOOKWORM_STAMP)
$(BOOKWORM_STAMP): | $(FIXTURES)/bookworm.sh
	$(FIXTURES)/bookworm.sh $(ROOTFS)/bookworm

# Probes inside each rootfs. Depending on the stamp too means a rebuilt
# rootfs gets them again.
$(ROOTFS)/busybox/usr/bin/%: $(PROBES)/% $(BUSYBOX_STAMP)
	install -D -m 0755 $< $@
$(ROOTFS)/bookworm/usr/bin/%: $(PROBES)/% $(BOOKWORM_STAMP)
	install -D -m 0755 $< $@

# -------------------------------------------------------- build and test

.PHONY: build test fmt-check clippy cargo-test
build:
	$(CARGO) build --release --workspace

# What the integration tests read: where the fixtures are and which binaries
# to drive (the release builds of `make build`).
TEST_ENV := BERTH_FIXTURES=$(BUILD) \
            BERTH_BIN=$(RELEASE)/berth \
            BERTH_WORKER_BIN=$(RELEASE)/berth-worker

# Extra arguments for `cargo test`, e.g. make test CARGO_TEST_ARGS='-- --nocapture'
CARGO_TEST_ARGS ?=

test: deps fixtures build fmt-check clippy cargo-test

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

cargo-test: fixtures build
	$(TEST_ENV) $(CARGO) test --workspace $(CARGO_TEST_ARGS)

# 3 parallel loops of $(STRESS_RUNS) short `berth run`s each, half of them
# under the default seccomp profile; a single failure fails it (make test runs
# the same test with 200 per loop).
STRESS_RUNS ?= 1000

.PHONY: stress
stress: fixtures build
	$(TEST_ENV) BERTH_STRESS_RUNS=$(STRESS_RUNS) $(CARGO) test -p berth-integration \
	    --test runtime_stress -- --nocapture

# ---------------------------------------------------------------- demo

# demo: the main job first (examples/demo.sh: Concourse-style tasks with
# berth-worker — the clone3 and musl DNS incidents side by side, the
# build -> test -> package pipeline), then berth on its own: the plan of one
# container start and the run.
DEMO_DIR := $(BUILD)/demo
DEMO_ID  := berth-demo

.PHONY: demo
demo: deps fixtures build
	@echo "== berth-worker: two Concourse-style tasks (examples/demo.sh)"
	BERTH_FIXTURES=$(BUILD) BERTH_BIN=$(RELEASE)/berth \
	BERTH_WORKER_BIN=$(RELEASE)/berth-worker examples/demo.sh
	@echo
	@echo "== berth itself: the steps one container start takes (berth plan), then the run"
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(RELEASE)/berth spec --seccomp default --bundle $(DEMO_DIR)
	jq --arg root $(ROOTFS)/busybox \
	   '.root = {path: $$root, readonly: true} | .process.terminal = false | .process.args = ["/bin/sh", "-c", "echo hello from a berth container; id; hostname; berth-probe clone3; berth-probe thread"]' \
	   $(DEMO_DIR)/config.json > $(DEMO_DIR)/config.json.new
	mv $(DEMO_DIR)/config.json.new $(DEMO_DIR)/config.json
	$(RELEASE)/berth plan $(DEMO_DIR) | grep -v '^       why:'
	$(RELEASE)/berth delete --force $(DEMO_ID) >/dev/null 2>&1 || true
	$(RELEASE)/berth run --bundle $(DEMO_DIR) $(DEMO_ID)

# --------------------------------------------------------------- bench

.PHONY: bench
bench: deps deps-bench fixtures build
	BERTH_FIXTURES=$(BUILD) BERTH_BIN=$(RELEASE)/berth \
	BERTH_WORKER_BIN=$(RELEASE)/berth-worker bench/run.sh

# -------------------------------------------------------- kernel matrix

# The VMs of `make test-kernels` (docs/kernels.md): virtme-ng boots a Debian
# kernel on the host's own root filesystem; qemu-system-x86 runs it, kmod's
# depmod indexes the kernel's modules. virtme-ng comes from PyPI (pinned).
DEPS_KERNELS := qemu-system-x86 kmod xz-utils file
VIRTME_NG    := virtme-ng==1.42
KERNELS      ?= 5.10 6.1 6.12
CGROUPS      ?= v2 v1 hybrid
TESTS        ?=
BATS         ?=
CONFORMANCE  ?= $(CURDIR)/integration/conformance
KERNELS_DIR  := $(BUILD)/kernels

.PHONY: deps-kernels test-kernels
deps-kernels:
	@$(call apt_install,$(DEPS_KERNELS),kernel matrix packages,--no-install-recommends)
	@if command -v vng >/dev/null && vng --version 2>/dev/null | grep -q ' $(subst virtme-ng==,,$(VIRTME_NG))$$'; then \
	    echo "deps: $(VIRTME_NG) installed"; \
	else \
	    python3 -m pip install -q '$(VIRTME_NG)'; \
	fi

# The binaries are the ones `make test` runs, built here on the host
# (`--no-run`); the VM only executes them. One line per binary: "name path
# dir", where name is the test target (`runtime_exec`) or crate.kind
# (`berth.lib`) and dir its package's directory, the cwd `cargo test` gives it.
# (One line on purpose: a backslash-newline inside the recipe's single quotes
# would reach jq.)
TEST_BINS_JQ := select(.reason == "compiler-artifact" and .profile.test == true and .executable != null) | (.target.name + (if .target.kind[0] == "test" then "" else "." + .target.kind[0] end)) + " " + .executable + " " + (.manifest_path | sub("/Cargo.toml$$"; ""))
test-kernels: deps deps-kernels fixtures build
	$(CARGO) test --workspace --no-run --message-format=json 2>/dev/null | \
	    jq -r '$(TEST_BINS_JQ)' > $(KERNELS_DIR).bins
	$(TEST_ENV) KERNELS='$(KERNELS)' CGROUPS='$(CGROUPS)' TESTS='$(TESTS)' \
	    BATS='$(BATS)' CONFORMANCE='$(CONFORMANCE)' \
	    KERNELS_DIR=$(KERNELS_DIR) integration/kernels/run.sh $(KERNELS_DIR).bins

# ------------------------------------------------------------- install

.PHONY: install
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(RELEASE)/berth $(RELEASE)/berth-worker $(DESTDIR)$(PREFIX)/bin/
	install -D -m 0644 profiles/default.json $(DESTDIR)$(PREFIX)/share/berth/profiles/default.json

# --------------------------------------------------------------- clean

# Fixture trees may hold leftovers of interrupted runs (a mount under a temp
# debootstrap dir): unmount before deleting, never cross into a mount.
.PHONY: clean clean-fixtures
clean-fixtures:
	if [ -d $(BUILD) ]; then \
	    awk -v d=$(BUILD) 'index($$5, d "/") == 1 { print $$5 }' /proc/self/mountinfo | \
	        sort -r | while read -r m; do umount -l "$$m"; done; \
	    rm -rf --one-file-system $(BUILD); \
	fi

clean: clean-fixtures
	$(CARGO) clean
