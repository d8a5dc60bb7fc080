# pyport: the two commands are `make demo' and `make test'. Both install missing
# Debian packages (as root; otherwise they print the apt-get command), configure
# CMake once, and build. This file only wraps CMake and ctest. (A project that
# depends on pyport never runs it: rebar3 and Mix build the port with
# tools/build_port.sh, CMake alone.)
BUILD ?= build
PYTHON ?= /usr/bin/python3
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
DEB_PACKAGES := gcc libc6-dev make cmake pkg-config git erlang-nox erlang-dev \
                erlang-common-test erlang-dialyzer erlang-edoc libuv1-dev python3-dev \
                python3-venv python3-numpy python3-flask rebar3 elixir

APP_DIR := $(BUILD)/pyport

.PHONY: all deps configure build test test-fast demo bench soak clean

all: build

deps:
	@tools/deps.sh $(DEB_PACKAGES)

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DPython3_EXECUTABLE=$(PYTHON) $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Every test (C unit, golden fixtures, EUnit, Common Test against the real port,
# all of them again against the sanitizer port, and packaging), one ctest summary.
test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1800

# The same without the sanitizer pass and the packaging tests.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -LE 'asan|pkg'

demo: build
	escript examples/demo.escript $(APP_DIR)

# BENCH_NODES=1 adds the scenario of pools over two peer nodes to make bench
# (bench/README.md); BENCH_NODES=only runs that scenario alone.
# ERLANG_PYTHON_GIT=<git dir of erlang-python> adds pyport beside erlang_python.
BENCH_NODES ?= 0
bench: build
	cmake --build $(BUILD) --target bench_echo -j $(JOBS)
	BENCH_NODES=$(BENCH_NODES) escript bench/bench.escript $(BUILD)
	if [ "$(BENCH_NODES)" != only ]; then \
	  escript bench/bench_template.escript $(BUILD) && \
	  escript bench/plot.escript $$(ls -t bench/results/*.term | head -1) docs/performance.svg; fi
	if [ -n "$(ERLANG_PYTHON_GIT)" ]; then \
	  ERLANG_PYTHON_GIT=$(ERLANG_PYTHON_GIT) bench/vs_erlang_python.sh $(BUILD); fi

# Half an hour of everything at once (not in CI): calls, callbacks, streams,
# timeouts, restarts, kills and floods; lost/duplicated must be 0.
SOAK_SECONDS ?= 1800
soak: build
	escript bench/soak.escript $(BUILD) $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) _build priv doc
