# The two commands a newcomer needs: `make demo` and `make test`. Each installs what it needs
# (apt + the project venv, idempotent) and builds with CMake/Ninja (ccache, precompiled headers).
BUILD ?= build
JOBS ?= $(shell nproc)
PY := .venv/bin/python

.PHONY: all setup build test demo clean

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt | setup
	@mkdir -p $(BUILD)
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DGQA_PYTHON="$(CURDIR)/$(PY)" > $(BUILD)/configure.log 2>&1 || (cat $(BUILD)/configure.log; exit 1)

build: setup $(BUILD)/build.ninja
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Fuzzing (tests/fuzz, docs/robustness.md): clang + libFuzzer builds of the torch-free parsers in
# build-fuzz/. `make fuzz` runs each target for FUZZ_SECONDS (or until FUZZ_RUNS executions when
# FUZZ_RUNS > 0); `make test` runs each for FUZZ_CHECK_SECONDS and fails on any finding.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 1800
FUZZ_RUNS ?= 0
FUZZ_CHECK_SECONDS ?= 15
.PHONY: fuzz fuzz-build fuzz-check
fuzz-build: setup
	@JOBS=$(JOBS) bash tests/fuzz/run.sh build $(FUZZ_BUILD)
fuzz: fuzz-build
	@bash tests/fuzz/run.sh run $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_RUNS)
fuzz-check: fuzz-build
	@bash tests/fuzz/run.sh run $(FUZZ_BUILD) $(FUZZ_CHECK_SECONDS)
test: fuzz-check

# Sanitizers (docs/robustness.md): the whole CTest suite built with gcc's ASan + UBSan
# (LeakSanitizer on) in build-asan/. Suppressions name third-party libraries only: tests/sanitize/.
ASAN_BUILD ?= build-asan
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$(CURDIR)/tests/sanitize/ubsan.supp \
  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize/lsan.supp:print_suppressions=0
.PHONY: test-sanitize
test-sanitize: setup
	@mkdir -p $(ASAN_BUILD)
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGQA_SANITIZE=ON \
	  -DGQA_PYTHON="$(CURDIR)/$(PY)" > $(ASAN_BUILD)/configure.log 2>&1 || (cat $(ASAN_BUILD)/configure.log; exit 1)
	@$(SANITIZE_ENV) cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && $(SANITIZE_ENV) ctest --output-on-failure -j $(JOBS)

# One code style (.clang-format, clang-format 14): `make format` applies it, `make format-check`
# (part of `make test`) fails naming every file that differs.
CLANG_FORMAT ?= clang-format-14
FORMAT_FILES = $(shell git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' 2>/dev/null)
.PHONY: format format-check
format: setup
	@$(CLANG_FORMAT) -i $(FORMAT_FILES)
format-check: setup
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES) 2>&1 | grep -o '^[^:]*:[0-9]*:[0-9]*: error' | cut -d: -f1 | sort -u \
	  | sed 's/^/format-check: differs from .clang-format: /' | { ! grep .; } || { echo "run: make format"; exit 1; }
test: format-check

demo: build
	@bash scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD)
