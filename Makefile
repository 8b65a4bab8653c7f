# PiFoundry — two commands do everything on a fresh Debian/Ubuntu machine:
#   make stemcell   bake the default stemcell (recipes/stemcells/bookworm-armv6l.yml)
#   make test       formatting, lints and the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PREREQS  := scripts/install-prereqs.sh
RECIPE   ?= recipes/stemcells/bookworm-armv6l.yml
OUT      ?= out
CARGO    ?= cargo
NEXTEST_PROFILE := $(if $(CI),ci,default)

API_EXAMPLES ?= 500
FUZZ_SECONDS ?= 180
FUZZ_SMOKE_SECONDS ?= 5

.PHONY: help stemcell bench-stemcell lab lab-down test bench powerd-aarch64 cpi-release api-fuzz fuzz clean

help:
	@echo "make stemcell   bake $(RECIPE) into $(OUT)/"
	@echo "make lab        virtual Pis netbooting $(LAB_IMAGE) from powerd, in $(LAB_DIR) (root); make lab-down"
	@echo "make test       cargo fmt --check, clippy -D warnings, cargo deny, cargo nextest (whole workspace)"
	@echo "make bench-stemcell  cold bake, warm re-bake after a late change, byte-identical check"
	@echo "make bench      benchmarks against their peers (gunzip, tar pipelines, load generator, dnsmasq TFTP)"
	@echo "make fuzz       every fuzz target under libFuzzer, FUZZ_SECONDS=$(FUZZ_SECONDS) each (make test: $(FUZZ_SMOKE_SECONDS) s)"
	@echo "make cpi-release  the BOSH CPI release (linux amd64 + arm64 CPI binaries) into $(OUT)/"
	@echo "make api-fuzz   schemathesis against powerd's /openapi.json, API_EXAMPLES=$(API_EXAMPLES) per operation"

stemcell:
	@bash $(PREREQS) stemcell
	$(CARGO) build --release --locked -p baker
	./target/release/baker bake --recipe $(RECIPE) -o $(OUT)

bench-stemcell:
	@bash $(PREREQS) stemcell bench
	bash scripts/bench-stemcell.sh

# The virtual Pi lab (lab/README.md): LAB_PIS emulated Pi Zeros that netboot LAB_IMAGE (a
# bake's root.img; `make stemcell` first) from a powerd in a network namespace of its own.
LAB_DIR   ?= $(OUT)/lab
LAB_PIS   ?= 2
LAB_IMAGE ?= $(OUT)/root.img

lab:
	@bash $(PREREQS) lab
	$(CARGO) build --release --locked -p powerd -p pifoundry-lab
	./target/release/pifoundry-lab up --dir $(LAB_DIR) --pis $(LAB_PIS) --image $(LAB_IMAGE)

lab-down:
	$(CARGO) build --release --locked -p pifoundry-lab
	./target/release/pifoundry-lab down --dir $(LAB_DIR)

test:
	@bash $(PREREQS) test
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) deny --locked check licenses bans sources
	bash scripts/fuzz.sh $(FUZZ_SMOKE_SECONDS)
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE)

bench:
	@bash $(PREREQS) bench
	bash scripts/bench-release.sh
	bash scripts/bench-rewrite.sh
	bash scripts/bench-audit.sh
	bash scripts/bench-powerd.sh
	bash scripts/bench-tftp.sh
	bash scripts/bench-nbd.sh
	bash scripts/bench-provision.sh

fuzz:
	@bash $(PREREQS) fuzz
	bash scripts/fuzz.sh $(FUZZ_SECONDS) $(TARGETS)

# the same test make test runs (25 examples per operation), with many more examples
api-fuzz:
	@bash $(PREREQS) api
	PIFOUNDRY_SCHEMATHESIS_EXAMPLES=$(API_EXAMPLES) $(CARGO) nextest run --locked -p powerd \
	  -E 'test(schemathesis)' --no-capture

powerd-aarch64:
	@bash $(PREREQS) cross
	$(CARGO) build --release --locked -p powerd --target aarch64-unknown-linux-musl

# The CPI release: static CPI binaries for the director's architectures, in the package
# `pi_cpi`, written by baker (bosh-cli's layout and fingerprints) and verified.
CPI_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
CPI_RELEASE_DIR := cpi/release
CPI_TARBALL := $(OUT)/bosh-pi-cpi-$(CPI_VERSION).tgz
CPI_BUILD := CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols $(CARGO) build --release --locked -p cpi --bin pifoundry-cpi

cpi-release:
	@bash $(PREREQS) cross
	$(CPI_BUILD) --target x86_64-unknown-linux-musl
	$(CPI_BUILD) --target aarch64-unknown-linux-musl
	install -D -m 0755 target/x86_64-unknown-linux-musl/release/pifoundry-cpi $(CPI_RELEASE_DIR)/src/pi_cpi/linux-amd64/pifoundry-cpi
	install -D -m 0755 target/aarch64-unknown-linux-musl/release/pifoundry-cpi $(CPI_RELEASE_DIR)/src/pi_cpi/linux-arm64/pifoundry-cpi
	mkdir -p $(OUT)
	$(CARGO) run --locked -q -p baker -- create-release $(CPI_RELEASE_DIR) --version $(CPI_VERSION) --tarball $(CPI_TARBALL)
	$(CARGO) run --locked -q -p baker -- verify-release $(CPI_TARBALL)

clean:
	$(CARGO) clean
	rm -rf $(OUT)
