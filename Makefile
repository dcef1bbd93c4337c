# Entry points; everything real lives in CMake and scripts/.
BUILD ?= build
JOBS ?= 2

.PHONY: setup build run test test-unit bench clean format

setup build:
	CLEAVE_JOBS=$(JOBS) scripts/setup.sh $(BUILD)

run: setup
	$(BUILD)/bin/cleave demo --out runs/demo

test: setup
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

test-unit: setup
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit

bench: setup
	scripts/bench.sh

clean:
	rm -rf $(BUILD)
