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

.PHONY: help stemcell bench-stemcell test bench powerd-aarch64 api-fuzz fuzz clean

help:
	@echo "make stemcell   bake $(RECIPE) into $(OUT)/"
	@echo "make test       cargo fmt --check, clippy -D warnings, cargo deny, cargo nextest (whole workspace)"
	@echo "make bench-stemcell  cold bake, warm re-bake after a late change, byte-identical check"
	@echo "make bench      benchmarks against their peers (gunzip, tar pipelines, load generator, dnsmasq TFTP)"
	@echo "make fuzz       every fuzz target under libFuzzer, FUZZ_SECONDS=$(FUZZ_SECONDS) each (make test: $(FUZZ_SMOKE_SECONDS) s)"
	@echo "make api-fuzz   schemathesis against powerd's /openapi.json, API_EXAMPLES=$(API_EXAMPLES) per operation"

stemcell:
	@bash $(PREREQS) stemcell
	$(CARGO) build --release --locked -p baker
	./target/release/baker bake --recipe $(RECIPE) -o $(OUT)

bench-stemcell:
	@bash $(PREREQS) stemcell bench
	bash scripts/bench-stemcell.sh

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

clean:
	$(CARGO) clean
	rm -rf $(OUT)
