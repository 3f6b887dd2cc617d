# quicpro — the two commands of the README are `make run` and `make test`.
# Both install what they need first (scripts/setup.sh skips what is present).

SHELL := /bin/bash
CARGO ?= cargo
FUZZ_SECONDS ?= 20


.PHONY: setup peers run run-cli demo-inspect test test-style test-rust test-examples test-php test-fuzz test-interop interop fuzz bench build php-ext install clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release -p quicpro-cli

# The PHP extension (target/release/libquicpro.so).
php-ext: setup
	$(CARGO) build --release -p quicpro

# The main job: the seed demo examples/ticket_resumption_multiworker.php —
# one PHP worker per core on UDP 4433 sharing TLS sessions through the
# shared-memory cache — on a generated self-signed certificate.
run: build php-ext
	@bash scripts/run-php-demo.sh

# The same server in Rust (`quicpro serve`), without PHP.
run-cli: build
	@bash scripts/run-server.sh

# Installs the extension the way PHP extensions are installed: the .so in
# PHP's extension directory and an ini in its conf.d scan directory.
install: php-ext
	@bash scripts/install-php-ext.sh target/release/libquicpro.so

# The packet inspector over real captured Initials.
demo-inspect: build
	@bash scripts/run-demo.sh

# Every test: unit, property and integration tests (the PHP extension, a
# cdylib PHP loads, has no Rust test harness: it is tested through PHP), the bench harnesses in
# test mode, and a short smoke run of each fuzz target.
test: setup peers test-style test-rust test-examples test-php test-fuzz test-interop

# Peer programs of ours on other stacks that tests run: the quiche peer
# (BoringSSL through cmake; about 3½ minutes cold, seconds after that).
peers: setup
	$(CARGO) build --release --manifest-path interop/peers/quiche-peer/Cargo.toml

test-rust:
	mkdir -p target; $(CARGO) test --workspace --exclude quicpro --all-targets --no-fail-fast 2>&1 | tee target/test-output.log; \
	  status=$${PIPESTATUS[0]}; bash scripts/summarize-tests.sh target/test-output.log; exit $$status

# Formatting (rustfmt.toml) of the workspace and the fuzz targets, and
# clippy with warnings as errors (lints in the workspace Cargo.toml).
test-style:
	$(CARGO) fmt --all --check
	cd fuzz && $(CARGO) fmt --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The examples that show how to drive the sans-I/O core (they assert
# their own outcome).
test-examples:
	$(CARGO) run -q -p quic-core --example udp_echo
	$(CARGO) run -q -p h3-core --example h3_get

# The extension's phpt tests (run-tests.php from php8.2-dev) against the
# debug build of the extension.
test-php:
	$(CARGO) build -p quicpro -p quicpro-cli
	$(CARGO) build -p quicpro-tests --bin conformance
	@bash scripts/test-php.sh target/debug/libquicpro.so

# Every committed corpus file and past crash input replayed through its
# target without libFuzzer (fuzz/tests/replay.rs), then a short run of each.
test-fuzz:
	cd fuzz && $(CARGO) test --profile replay
	@bash scripts/fuzz.sh smoke $(FUZZ_SECONDS)

# The interop runner's fast subset against the peers Debian and PyPI ship
# (quic-go through Caddy, ngtcp2, aioquic): fails on any failure of ours.
test-interop:
	$(CARGO) build --release -p quicpro-cli -p quicpro-interop
	target/release/interop --no-build --fast --peers quicpro,quic-go,ngtcp2,aioquic --jobs 3 --work target/interop-fast --out target/interop-fast.md > target/interop-fast.log 2>&1; \
	  status=$$?; grep -E "FAIL" target/interop-fast.log; \
	  echo "interop: $$(grep -c ' pass$$' target/interop-fast.log) passed, $$(grep -c 'FAIL' target/interop-fast.log) failed, $$(grep -c 'unsupported' target/interop-fast.log) unsupported"; exit $$status

# The full interop matrix (all peers incl. quiche and Chromium, all cases):
# writes docs/INTEROP.md. About 15 minutes.
interop: setup
	$(CARGO) run --release -p quicpro-interop --bin interop -- --build-quiche --jobs 3 --out docs/INTEROP.md

# Long fuzzing runs: `make fuzz FUZZ_SECONDS=600`.
fuzz: setup
	@bash scripts/fuzz.sh long $(FUZZ_SECONDS)

bench: setup
	$(CARGO) bench -p quicpro-benches

clean:
	$(CARGO) clean
