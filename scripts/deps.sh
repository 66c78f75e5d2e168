#!/usr/bin/env bash
# Installs everything the build, the tests, the benchmarks and the image need.
# Idempotent and quiet: it asks apt/pip only for what is missing.
set -euo pipefail

# Debian packages, one group per purpose.
build_packages=(pkg-config file libnl-3-dev libnl-route-3-dev libcap-dev libssl-dev)
test_packages=(iproute2 iptables iputils-ping tshark socat openssh-client openssl python3-pexpect valgrind)
fuzz_packages=(libclang-rt-14-dev)
image_packages=(linux-image-amd64 busybox-static cpio squashfs-tools dropbear-bin fdisk qemu-system-x86 e2fsprogs)
bench_packages=(rtpengine-daemon linux-perf)
packages=("${build_packages[@]}" "${test_packages[@]}" "${fuzz_packages[@]}" "${image_packages[@]}" "${bench_packages[@]}")

# Python test tools (pip): the PER oracle needs asn1tools; the system tests
# use pytest and pexpect.
python_modules=(asn1tools:asn1tools==0.169.0 pytest:pytest pexpect:pexpect)

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # rtpengine-daemon must not start a system service; the benchmark runs it itself.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

python=${PYTHON:-python3}
for entry in "${python_modules[@]}"; do
    module=${entry%%:*}
    requirement=${entry#*:}
    if ! "$python" -c "import $module" 2>/dev/null; then
        echo "deps: pip installing $requirement"
        "$python" -m pip install -q --disable-pip-version-check "$requirement"
    fi
done
