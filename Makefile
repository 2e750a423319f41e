# berth: build, test and fixture targets.
#
#   make deps      install the Debian packages the build and tests need (idempotent)
#   make fixtures  build the test fixtures under build/ (cached)
#   make build     cargo build --release --workspace
#   make test      everything above, then fmt, clippy and the whole test suite
#
# Fixture paths are a contract with the tests (they read $BERTH_FIXTURES):
#   build/rootfs/busybox   busybox-static rootfs
#   build/rootfs/bookworm  debootstrap'd Debian 12 (glibc) rootfs
#   build/probes/          the berth-probe binaries

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

# rustup installs cargo in ~/.cargo/bin, which a non-login shell (CI,
# `vagrant provision`) may not have on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

BUILD    := $(CURDIR)/build
ROOTFS   := $(BUILD)/rootfs
FIXTURES := $(CURDIR)/integration/fixtures

.PHONY: fixtures fixture-busybox
fixtures: fixture-busybox

fixture-busybox: $(ROOTFS)/busybox/.stamp
$(ROOTFS)/busybox/.stamp: $(FIXTURES)/busybox.sh
	$(FIXTURES)/busybox.sh $(ROOTFS)/busybox
	touch $@
