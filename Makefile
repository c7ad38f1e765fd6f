# fpmlb: the targets a newcomer would guess.
#   make demo   a local cluster (3 php-fpm nodes, memcached) with fpmlb in front
#   make test   install what the tests need, lint, unit and end-to-end tests
#   make bench  fpmlb side by side with nginx and HAProxy on the same pools
#   make lint   rustfmt + clippy, warnings are errors, and make deps
#   make deps   the module graph; fails if a use runs against docs/architecture.md's order

SHELL := /bin/bash
CARGO ?= cargo
# Two cores on the reference machine: keep builds and tests modest.
JOBS ?= 2
export CARGO_BUILD_JOBS := $(JOBS)

.PHONY: all build release test unit e2e lint deps fmt demo demo-stop bench install-deps clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

install-deps:
	integration/install.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

deps:
	scripts/deps.sh

fmt:
	$(CARGO) fmt --all

# Unit and fake-backend tests, then the end-to-end tests against real
# php-fpm, memcached and Redis (each test starts its own cluster on its own
# 127.0.N.x addresses and stops it).
test: install-deps lint
	$(CARGO) nextest run --no-fail-fast --test-threads $(JOBS)

demo: install-deps release
	integration/demo.sh

demo-stop:
	integration/demo.sh stop

bench: install-deps release
	integration/bench.sh

clean:
	$(CARGO) clean
