# pyport: the two commands are `make demo' and `make test'. Both install missing
# Debian packages (as root; otherwise they print the apt-get command), configure
# CMake once, and build. This file only wraps CMake and ctest.
BUILD ?= build
PYTHON ?= /usr/bin/python3
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
DEB_PACKAGES := gcc libc6-dev make cmake pkg-config erlang-nox erlang-dev \
                erlang-common-test libuv1-dev python3-dev python3-venv

APP_DIR := $(BUILD)/pyport

.PHONY: all deps configure build test test-fast demo bench soak rebar-priv clean

all: build

deps:
	@tools/deps.sh $(DEB_PACKAGES)

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DPython3_EXECUTABLE=$(PYTHON) $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Every test (C unit, golden fixtures, EUnit, Common Test against the real port,
# and all of them again against the sanitizer port), one ctest summary.
test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1800

# The same without the sanitizer pass.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -LE asan

demo: build
	escript examples/demo.escript $(APP_DIR)

bench: build
	cmake --build $(BUILD) --target bench_echo -j $(JOBS)
	escript bench/bench.escript $(BUILD)
	escript bench/plot.escript $$(ls -t bench/results/*.term | head -1) docs/performance.svg

# Half an hour of everything at once (not in CI): calls, callbacks, streams,
# timeouts, restarts, kills and floods; lost/duplicated must be 0.
SOAK_SECONDS ?= 1800
soak: build
	escript bench/soak.escript $(BUILD) $(SOAK_SECONDS)

# For rebar3 (rebar.config): the port program and its Python helpers in ./priv.
rebar-priv:
	$(MAKE) BUILD=build-rebar CMAKE_FLAGS=-DPYPORT_ASAN_TESTS=OFF build
	rm -rf priv && mkdir -p priv && cp -r build-rebar/pyport/priv/. priv/

clean:
	rm -rf $(BUILD) build-rebar priv
