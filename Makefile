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

# Build identity: version file, git revision, and the commit date (not "now")
# so that two builds of one commit are byte-identical.
VERSION     := $(shell cat VERSION)
GIT_REV     := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
BUILD_DATE  := $(shell git log -1 --format=%cs 2>/dev/null || echo unknown)
IDENTITY    := -Xcc -DBLOO_VERSION=$(VERSION) -Xcc -DBLOO_GIT_REV=$(GIT_REV) -Xcc -DBLOO_BUILD_DATE=$(BUILD_DATE)

STATIC_FLAGS := -c release --static-swift-stdlib -Xswiftc -static-executable \
                -Xlinker --gc-sections $(IDENTITY)

.PHONY: deps build static test unit-test system-test run bench fuzz image clean

deps:
	@scripts/deps.sh

build: deps
	$(SWIFT) build --build-tests

static: deps
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
