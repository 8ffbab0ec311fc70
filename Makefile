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

demo: build
	@bash scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD)
