# fpmlb: the targets a newcomer would guess.
#   make demo        a local cluster (3 php-fpm nodes, memcached) with fpmlb in front
#   make test        install what the tests need, lint, then `unit` and `e2e`
#   make unit        tests that need no php-fpm: the library's own, the fake-backend
#                    fault tests (tests/faults.rs), the client-limit tests
#   make e2e         the rest: real php-fpm, memcached, Redis, nginx, chromium
#   make test-clean  stop and remove what killed test runs left behind
#   make bench       fpmlb side by side with nginx and HAProxy on the same pools
#   make fuzz        the libFuzzer targets (fuzz/), FUZZ_SECONDS each (nightly)
#   make soak        minutes of mixed load on a real cluster, fpmlb's RSS watched
#   make lint        rustfmt, clippy and rustdoc (warnings are errors), cargo deny, make deps
#   make deps        the module graph; fails if a use runs against docs/architecture.md's order
#
# The toolchain is pinned in rust-toolchain.toml; `make tools` installs the
# cargo tools the targets run when they are missing.

SHELL := /bin/bash
CARGO ?= cargo
# Two cores on the reference machine: keep builds and tests modest.
JOBS ?= 2
export CARGO_BUILD_JOBS := $(JOBS)
# DENY_ADVISORIES=1: fail `make lint` when the RustSec advisory database
# cannot be fetched (see `deny` below); by default it warns and goes on.
DENY_ADVISORIES ?= 0

# nextest filter of the tests that need none of the Debian packages.
UNIT_TESTS := kind(lib) | kind(bin) | binary(faults) | binary(client_limits) | binary(decoders)
NEXTEST := $(CARGO) nextest run --no-fail-fast --test-threads $(JOBS)

# `make -j test` must still lint, then run unit, then e2e.
.NOTPARALLEL:
.PHONY: all build release test unit e2e test-clean lint deny deps fmt tools demo demo-stop bench \
	install-deps clean fuzz fuzz-tools fuzz-merge fuzz-cmin soak

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

install-deps:
	integration/install.sh

# The cargo tools the targets run, each installed only when missing:
# cargo-nextest and cargo-deny from crates.io (--locked: the versions their
# authors tested), clippy and rustfmt with rustup (rust-toolchain.toml lists
# them, so rustup normally brings them with the pinned toolchain).
tools:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest
	@$(CARGO) deny --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-deny
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt

lint: tools deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	RUSTDOCFLAGS='-D warnings' $(CARGO) doc --no-deps --document-private-items
	$(MAKE) --no-print-directory deny

# deny.toml: licences, duplicate versions, crate sources, advisories.
# Advisories are checked against the RustSec database, a git clone of
# github.com/rustsec/advisory-db that cargo-deny keeps in
# $CARGO_HOME/advisory-dbs. Where github.com cannot be reached (the
# reference machine has no network but the package registries) and no
# copy was fetched before, advisories are NOT checked: this target says so
# and goes on (DENY_ADVISORIES=1 makes it an error). A copy fetched earlier
# is used when it cannot be refreshed, and the message says so.
deny: tools
	$(CARGO) deny --locked check licenses bans sources
	@if $(CARGO) deny fetch db >/dev/null 2>&1; then \
		$(CARGO) deny --locked --offline check advisories; \
	elif ls -d "$${CARGO_HOME:-$$HOME/.cargo}"/advisory-dbs/*/.git >/dev/null 2>&1; then \
		echo "make deny: cannot refresh the RustSec advisory database; checking against the copy fetched earlier"; \
		$(CARGO) deny --locked --offline check advisories; \
	elif [ "$(DENY_ADVISORIES)" = 1 ]; then \
		echo "make deny: cannot fetch the RustSec advisory database (github.com/rustsec/advisory-db) and DENY_ADVISORIES=1" >&2; \
		exit 1; \
	else \
		echo "make deny: WARNING: advisories NOT checked: cannot fetch github.com/rustsec/advisory-db (licences, bans and sources were checked)"; \
	fi

deps:
	scripts/deps.sh

fmt:
	$(CARGO) fmt --all

# Each test starts its own cluster on its own 127.0.N.x addresses
# (tests/support/nets.rs) and stops it; timing-sensitive tests run alone
# (.config/nextest.toml).
test: install-deps lint unit e2e

unit: tools
	$(NEXTEST) -E '$(UNIT_TESTS)'

e2e: install-deps tools
	$(NEXTEST) -E 'not ($(UNIT_TESTS))'

# A killed test run leaves its php-fpm, memcached, Redis and nginx daemons
# running in $TMPDIR/fpmlb-test/netN; this stops them through their pid
# files and removes the folders. Run it with the TMPDIR the tests had
# (under /work/wt/isolated NAME, that is /tmp/NAME).
test-clean:
	integration/test-clean.sh

demo: release
	integration/install.sh --demo
	integration/demo.sh

demo-stop:
	integration/demo.sh stop

bench: release
	integration/install.sh --bench
	integration/bench.sh

# Fuzzing (fuzz/README.md): cargo-fuzz and libFuzzer on the nightly
# toolchain; the main crate stays on the pinned stable one. Each target runs
# FUZZ_SECONDS from the committed seeds (fuzz/corpus/TARGET, read only)
# into a work corpus (fuzz/work/TARGET, not committed), with libFuzzer's
# memory limits: an input that makes a decoder allocate past
# FUZZ_MALLOC_MB in one go, or the process pass FUZZ_RSS_MB, is a crash.
# A crash stops the run; its input is in fuzz/artifacts/TARGET/.
# `make fuzz-merge` folds the inputs that add coverage into the seeds.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= fastcgi_record cgi_head request_path config save_path
FUZZ_RSS_MB ?= 1024
FUZZ_MALLOC_MB ?= 256
FUZZ_MAX_LEN ?= 8192
FUZZ_NICE ?= 19
FUZZ_TOOLCHAIN ?= nightly
FUZZ := nice -n $(FUZZ_NICE) $(CARGO) +$(FUZZ_TOOLCHAIN) fuzz

fuzz-tools:
	@$(CARGO) +$(FUZZ_TOOLCHAIN) --version >/dev/null 2>&1 || rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	@$(CARGO) +$(FUZZ_TOOLCHAIN) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz

fuzz: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t && \
		echo "== fuzz $$t: $(FUZZ_SECONDS) s" && \
		$(FUZZ) run $$t fuzz/work/$$t fuzz/corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=$(FUZZ_RSS_MB) \
			-malloc_limit_mb=$(FUZZ_MALLOC_MB) -max_len=$(FUZZ_MAX_LEN) -timeout=10 \
			-print_final_stats=1 || exit 1; \
	done

# The fewest work-corpus inputs that reach code the committed seeds do not,
# added to them: edges only (-use_counters=0, not hit counts) and a set
# cover, which keeps a few hundred files where a plain merge keeps
# thousands; fuzzing finds the hit counts again in seconds.
FUZZ_MERGE_FLAGS := -merge=1 -set_cover_merge=1 -use_counters=0 -rss_limit_mb=$(FUZZ_RSS_MB) \
	-malloc_limit_mb=$(FUZZ_MALLOC_MB) -max_len=$(FUZZ_MAX_LEN)
fuzz-merge: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t && \
		$(FUZZ) run $$t fuzz/corpus/$$t fuzz/work/$$t -- $(FUZZ_MERGE_FLAGS) || exit 1; \
	done

# The committed seeds cut to the fewest files with the same edges (cargo
# fuzz cmin; it drops hand-written seeds that add nothing, so look at the
# diff before committing).
fuzz-cmin: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
		$(FUZZ) cmin $$t fuzz/corpus/$$t -- -set_cover_merge=1 -use_counters=0 \
			-rss_limit_mb=$(FUZZ_RSS_MB) || exit 1; \
	done

# Mixed load against fpmlb on a real cluster for SOAK_SECONDS, its RSS
# sampled every second (integration/soak.sh --help).
soak: release install-deps
	integration/soak.sh

clean:
	$(CARGO) clean
