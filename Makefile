# Front door. `make demo` and `make test` work on a fresh Debian 12 machine:
# both install what is missing (scripts/setup.sh), then build.
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
CC ?= cc

.PHONY: all setup build build-asan test test-fast demo install bench fuzz clean format

all: build

setup:
	@scripts/setup.sh
	@scripts/setup-node.sh

build: setup
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)

# The same code under AddressSanitizer + UndefinedBehaviorSanitizer, built with
# clang so that both compilers see the code with warnings as errors.
build-asan: setup
	@CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLUMIO_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

test: build build-asan
	@echo "== tests (gcc, release)"
	@cd build && ctest --output-on-failure -j $(JOBS)
	@echo "== tests (clang, ASan+UBSan)"
	@cd build-asan && ctest --output-on-failure -j $(JOBS)

# Only the release build's tests.
test-fast: build
	@cd build && ctest --output-on-failure -j $(JOBS)

demo: build
	@scripts/demo.sh

install: build
	@cmake --install build --prefix $(PREFIX)

bench: build
	@bench/run.sh

# The fuzzers for a bounded time (FUZZ_SECONDS each, default 300).
FUZZ_SECONDS ?= 300
fuzz: build-asan
	@fuzz/run.sh build-asan/fuzz_stream_reader fuzz/corpus/stream_reader $(FUZZ_SECONDS)
	@fuzz/run.sh build-asan/fuzz_http_head fuzz/corpus/http_head $(FUZZ_SECONDS)
	@fuzz/run.sh build-asan/fuzz_zarr_meta fuzz/corpus/zarr_meta $(FUZZ_SECONDS)
	@fuzz/run.sh build-asan/fuzz_zarr_open fuzz/corpus/zarr_open $(FUZZ_SECONDS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	@rm -rf build build-asan
