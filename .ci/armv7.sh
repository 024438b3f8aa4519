#!/usr/bin/env bash
# The engine and net test suites on 32-bit ARM (armv7-unknown-linux-gnueabihf,
# tier 2 on stable), run under qemu-user, so that a 32-bit, alignment or
# endianness-neutral regression fails CI. Installs what it needs (Debian's
# qemu-user and arm cross gcc, rustup's armv7 std). Runs in a few minutes.
#
# Tests that re-execute themselves (the SIGKILL tests) need the kernel to run
# an ARM binary through qemu: binfmt_misc, registered here as root. Where that
# cannot be done, they are skipped and a line says so.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=armv7-unknown-linux-gnueabihf

need_apt=()
command -v qemu-arm >/dev/null || need_apt+=(qemu-user)
[ -e /usr/libexec/qemu-binfmt/arm-binfmt-P ] || need_apt+=(qemu-user-binfmt)
command -v arm-linux-gnueabihf-gcc >/dev/null || need_apt+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "armv7: installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"

BINFMT=/proc/sys/fs/binfmt_misc
[ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
if [ ! -e "$BINFMT/qemu-arm" ] && [ -w "$BINFMT/register" ]; then
  cat /usr/lib/binfmt.d/qemu-arm.conf > "$BINFMT/register" 2>/dev/null || true
fi
skip=()
if [ ! -e "$BINFMT/qemu-arm" ]; then
  echo "armv7: binfmt_misc cannot run ARM binaries here: skipping the tests that re-execute themselves (sigkill)"
  skip=(--skip sigkill)
fi

export QEMU_LD_PREFIX=/usr/arm-linux-gnueabihf
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER=qemu-arm
start=$(date +%s)
cargo test -p hypha-engine -p hypha-net --target "$TARGET" -- "${skip[@]}"
echo "armv7: engine and net tests passed under qemu-arm in $(($(date +%s) - start)) s"
