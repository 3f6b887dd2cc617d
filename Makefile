# quicpro — the two commands of the README are `make run` and `make test`.
# Both install what they need first (scripts/setup.sh skips what is present).

SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 20


.PHONY: setup run demo-inspect test test-rust test-fuzz fuzz bench build clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release -p quicpro-cli

# The main job: the multi-worker HTTP/3 server on port 4433 (self-signed
# certificate in certs/). The PHP edition of the seed demo replaces it once
# the extension exists.
run: build
	@bash scripts/run-server.sh

# The packet inspector over real captured Initials.
demo-inspect: build
	@bash scripts/run-demo.sh

# Every test: unit, property and integration tests, the bench harnesses in
# test mode, and a short smoke run of each fuzz target.
test: setup test-rust test-fuzz

test-rust:
	mkdir -p target; $(CARGO) test --workspace --all-targets --no-fail-fast 2>&1 | tee target/test-output.log; \
	  status=$${PIPESTATUS[0]}; bash scripts/summarize-tests.sh target/test-output.log; exit $$status

test-fuzz:
	@bash scripts/fuzz.sh smoke $(FUZZ_SECONDS)

# Long fuzzing runs: `make fuzz FUZZ_SECONDS=600`.
fuzz: setup
	@bash scripts/fuzz.sh long $(FUZZ_SECONDS)

bench: setup
	$(CARGO) bench -p quicpro-benches

clean:
	$(CARGO) clean
