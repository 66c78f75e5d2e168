# Bloophone ProxyServer firmware.
#   make run    installs what it needs, builds, runs the appliance
#   make test   installs what it needs, runs every test suite
SHELL := /bin/bash
.DEFAULT_GOAL := build

SWIFT       ?= swift
PYTHON      ?= python3
BUILD_DIR   := build
BLOO        := $(BUILD_DIR)/bloo
BOARD       ?= qemu-x86_64

STATIC_FLAGS := -c release --static-swift-stdlib -Xswiftc -static-executable \
                -Xlinker --gc-sections

# Build identity: scripts/identity.sh writes Sources/CSystem/identity.h (only when it changes).
.PHONY: deps identity build static test unit-test system-test run bench fuzz image clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build --build-tests

identity:
	@scripts/identity.sh

static: deps identity
	$(SWIFT) build $(STATIC_FLAGS) --product bloo
	@mkdir -p $(BUILD_DIR)
	@cp "$$($(SWIFT) build $(STATIC_FLAGS) --show-bin-path)/bloo" $(BLOO).tmp
	@strip $(BLOO).tmp && mv $(BLOO).tmp $(BLOO)
	@file $(BLOO) | grep -q 'statically linked' || { file $(BLOO); echo "static: $(BLOO) is not statically linked" >&2; exit 1; }
	@echo "static: $(BLOO) $$(stat -c %s $(BLOO)) bytes ($$(du -h $(BLOO) | cut -f1)), $$(file -b $(BLOO) | cut -d, -f1-2)"

unit-test: build
	$(SWIFT) test --skip-build

system-test: static
	$(PYTHON) -m pytest -q -rs Tests/system

test: unit-test system-test

run: static
	scripts/run.sh

bench: static
	bench/run.sh

fuzz: deps
	fuzz/run.sh

image: static
	board/$(BOARD)/build-image.sh

clean:
	rm -rf .build .build-* $(BUILD_DIR)
