# Prescale: the two commands a new user needs are `make demo` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
DEMO_PORT ?= 8080
PRESCALE := $(BUILD_DIR)/apps/prescale/prescale

.PHONY: all deps configure build test demo bench clean format

all: build

deps:
	@scripts/install-deps

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Every test (unit, integration, end-to-end) through ctest; ctest prints the summary last.
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 300

demo: build
	@scripts/demo $(PRESCALE) $(DEMO_PORT)

bench: build
	bench/http_hello.sh
	$(BUILD_DIR)/bench/metrics_bench --benchmark_min_time=0.2
	$(BUILD_DIR)/bench/policy_bench --benchmark_min_time=1
	bench/autoscale.sh

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
