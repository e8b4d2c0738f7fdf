# simarray: `make demo` runs the product, `make test` runs the whole suite. Both install
# what is missing (Debian packages, as root), configure with Ninja and build first.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all deps configure build test test-unit test-integration soak tsan fuzz demo bench container-test format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSIMARRAY_ONLY_INTEGRATION=OFF

configure: deps $(BUILD)/build.ninja

build: configure
	ninja -C $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE soak

test-unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE 'soak|integration'

test-integration: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L integration

soak: build
	ctest --test-dir $(BUILD) --output-on-failure -L soak

# ThreadSanitizer (docs/threads.md): a clang-14 TSan build in build-tsan/, its unit tests, and
# the pair's integration cases run by this build's integration_test against the TSan
# simarrayd. Fails on any race report. Also under `make soak` (soak:tsan).
tsan: build
	BUILD=$(BUILD) JOBS=$(JOBS) scripts/tsan.sh all

# Exploratory libFuzzer runs in a separate clang-14 build (build-fuzz/): FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/fuzz.sh all $(FUZZ_SECONDS)

# Only what the demo runs: the daemon and the CLI, not the tests.
demo: configure
	ninja -C $(BUILD) -j $(JOBS) simarrayd simarrayctl
	@scripts/demo.sh $(BUILD)

# The benchmark (not a test): simarray beside raw gRPC and nbdkit baselines, 3½ to 5
# minutes after the build. More flags: make bench BENCH_ARGS="--json --duration-s 5".
bench: configure
	ninja -C $(BUILD) -j $(JOBS) simarray-bench simarrayd
	$(BUILD)/tools/bench/simarray-bench $(BENCH_ARGS)

# A pair of containers on a podman network: partition, resync, SIGKILL, compose
# (docs/containers.md). Not part of `make test`; the first image build takes minutes.
container-test:
	@scripts/container-test.sh

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-fuzz build-tsan demo-data
