# Entry points; everything real lives in CMake and scripts/.
BUILD ?= build
JOBS ?= 2

.PHONY: setup build run test test-unit test-asan test-tsan bench clean format fuzz

setup build:
	CLEAVE_JOBS=$(JOBS) scripts/setup.sh $(BUILD)

# The built-in simulated fleet (generated notes, random model, 6 sites): no
# downloads, about a minute on 2 cores. `cleave demo` is the single-site run.
run: setup
	$(BUILD)/bin/cleave simulate --out runs/simulate

test: setup
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

test-unit: setup
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit

# The unit and integration tests under AddressSanitizer + UBSan, and under
# ThreadSanitizer, each in its own build directory (a cold build takes a
# while on 2 cores); see scripts/sanitize.sh.
test-asan:
	CLEAVE_JOBS=$(JOBS) scripts/sanitize.sh address

test-tsan:
	CLEAVE_JOBS=$(JOBS) scripts/sanitize.sh thread

bench: setup
	scripts/bench.sh

clean:
	rm -rf $(BUILD)

# libFuzzer targets (clang, ASan+UBSan) in their own build dir, each run for
# FUZZ_SECONDS from the seed corpus in fuzz/corpus/ (see SECURITY.md).
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz:
	CLEAVE_JOBS=$(JOBS) scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
