#!/usr/bin/env bash
# `make run`: the appliance's main job. It grows with the product; today it
# shows the binary that the image will carry.
set -euo pipefail
cd "$(dirname "$0")/.."
build/bloo --version
build/bloo help
