#!/usr/bin/env bash
# Cross-builds the deploy binary for a router: bash deploy/cross.sh TARGET
#
#   aarch64-unknown-linux-musl       stable; rustup's std; static
#   armv7-unknown-linux-gnueabihf    stable; rustup's std; glibc, dynamic (Debian, Raspberry Pi OS)
#   armv7-unknown-linux-musleabihf   nightly -Zbuild-std (see below); static
#   mips-unknown-linux-musl          nightly -Zbuild-std (tier 3); soft float; static
#   mipsel-unknown-linux-musl        nightly -Zbuild-std (tier 3); soft float; static
#
# The -Zbuild-std targets need what rustup would otherwise ship for them, so
# this script builds it once into $CARGO_TARGET_DIR/cross/: musl 1.2.3 (from
# Debian's source package; set MUSL_TARBALL to use another copy) with the
# Debian cross gcc, a musl-gcc wrapper as the linker, and LLVM's libunwind
# from nightly's rust-src (as rustc's own build does for musl targets).
# Needs: rustup with nightly + rust-src, and the Debian packages the script
# names when one is missing. Output: $CARGO_TARGET_DIR/TARGET/deploy/hypha.
#
#   bash deploy/cross.sh TARGET --test
# instead runs the engine and net test suites for TARGET under qemu-user
# (Debian's qemu-user and qemu-user-binfmt; binfmt_misc is registered so that
# the tests that re-execute themselves run too). CI runs armv7-gnueabihf this
# way (.ci/armv7.sh); the mips run is by hand (deploy/README.md says when).
set -euo pipefail

TARGET=${1:?usage: deploy/cross.sh TARGET [--test] (see the top of this file)}
TEST=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CROSS=$CARGO_TARGET_DIR/cross
ENV_TARGET=$(echo "$TARGET" | tr 'a-z-' 'A-Z_')

need() { command -v "$1" >/dev/null || { echo "cross.sh: $1 not found: apt-get install $2" >&2; exit 2; }; }

case "$TARGET" in
  aarch64-unknown-linux-musl) GCC=aarch64-linux-gnu-gcc PKG=gcc-aarch64-linux-gnu ;;
  armv7-unknown-linux-gnueabihf) GCC=arm-linux-gnueabihf-gcc PKG=gcc-arm-linux-gnueabihf ;;
  armv7-unknown-linux-musleabihf) GCC=arm-linux-gnueabihf-gcc PKG=g++-arm-linux-gnueabihf CFLAGS_T="" ;;
  mips-unknown-linux-musl) GCC=mips-linux-gnu-gcc PKG=g++-mips-linux-gnu CFLAGS_T="-msoft-float" ;;
  mipsel-unknown-linux-musl) GCC=mipsel-linux-gnu-gcc PKG=g++-mipsel-linux-gnu CFLAGS_T="-msoft-float" ;;
  *) echo "cross.sh: unknown target $TARGET (see the top of this file)" >&2; exit 2 ;;
esac
need "$GCC" "$PKG"
cd "$ROOT"

case "$TARGET" in
  aarch64-unknown-linux-musl|armv7-unknown-linux-gnueabihf)
    rustup target add "$TARGET"
    export "CARGO_TARGET_${ENV_TARGET}_LINKER=$GCC"
    cargo build --profile deploy -p hypha-server --target "$TARGET"
    ls -l "$CARGO_TARGET_DIR/$TARGET/deploy/hypha"
    exit 0
    ;;
esac

# ---- nightly -Zbuild-std: musl and libunwind for the target, built once.
PREFIX=${GCC%gcc}
need "${PREFIX}g++" "$PKG"
rustup component list --installed --toolchain nightly | grep -q '^rust-src' \
  || rustup component add rust-src --toolchain nightly
MUSL=$CROSS/musl-$TARGET
UNWIND=$CROSS/unwind-$TARGET
mkdir -p "$CROSS"

if [ ! -f "$MUSL/lib/libc.a" ]; then
  if [ -z "${MUSL_TARBALL:-}" ]; then
    MUSL_TARBALL=$(ls "$CROSS"/musl_*.orig.tar.gz 2>/dev/null | head -1 || true)
    if [ -z "$MUSL_TARBALL" ]; then
      (cd "$CROSS" && apt-get source --download-only musl) || {
        echo "cross.sh: cannot fetch musl's source; enable deb-src in apt's sources or set MUSL_TARBALL" >&2; exit 2; }
      MUSL_TARBALL=$(ls "$CROSS"/musl_*.orig.tar.gz | head -1)
    fi
  fi
  rm -rf "$CROSS/build-$TARGET" && mkdir -p "$CROSS/build-$TARGET"
  tar xzf "$MUSL_TARBALL" -C "$CROSS/build-$TARGET" --strip-components=1
  (cd "$CROSS/build-$TARGET" \
    && ./configure --prefix="$MUSL" --disable-shared CC="$GCC" CFLAGS="$CFLAGS_T -Os" >/dev/null \
    && make -j"$(nproc)" >/dev/null && make install >/dev/null)
  echo "musl for $TARGET: $MUSL"
fi

if [ ! -f "$UNWIND/libunwind.a" ]; then
  L=$(rustc +nightly --print sysroot)/lib/rustlib/src/rust/src/llvm-project/libunwind
  GCCINC=$("$GCC" -print-file-name=include)
  FLAGS="$CFLAGS_T -Os -nostdinc -isystem $MUSL/include -isystem $GCCINC -I$L/include -fstrict-aliasing -funwind-tables -fvisibility=hidden -D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS -DNDEBUG"
  rm -rf "$UNWIND" && mkdir -p "$UNWIND/obj"
  for f in UnwindLevel1-gcc-ext.c UnwindLevel1.c; do "$GCC" $FLAGS -std=c99 -c "$L/src/$f" -o "$UNWIND/obj/$f.o"; done
  for f in UnwindRegistersRestore.S UnwindRegistersSave.S; do "$GCC" $FLAGS -c "$L/src/$f" -o "$UNWIND/obj/$f.o"; done
  for f in Unwind-EHABI.cpp Unwind-seh.cpp libunwind.cpp; do
    "${PREFIX}g++" $FLAGS -std=c++11 -nostdinc++ -fno-exceptions -fno-rtti -c "$L/src/$f" -o "$UNWIND/obj/$f.o"
  done
  "${PREFIX}ar" rcs "$UNWIND/libunwind.a" "$UNWIND"/obj/*.o
  echo "libunwind for $TARGET: $UNWIND"
fi

# crt-static: rustc links the mips musl targets dynamically by default (as
# OpenWrt does); a static binary runs on any router of the architecture.
export "CARGO_TARGET_${ENV_TARGET}_LINKER=$MUSL/bin/musl-gcc"
export "CARGO_TARGET_${ENV_TARGET}_RUSTFLAGS=-C target-feature=+crt-static -C link-self-contained=no -L $UNWIND"
if [ "$TEST" = --test ]; then
  QEMU=qemu-${TARGET%%-*}
  QEMU=${QEMU/qemu-armv7/qemu-arm}
  need "$QEMU" qemu-user
  BINFMT=/proc/sys/fs/binfmt_misc
  [ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null || true
  if [ ! -e "$BINFMT/$QEMU" ] && [ -f "/usr/lib/binfmt.d/$QEMU.conf" ]; then
    cat "/usr/lib/binfmt.d/$QEMU.conf" > "$BINFMT/register" 2>/dev/null || true
  fi
  [ -e "$BINFMT/$QEMU" ] || echo "cross.sh: $QEMU is not registered with binfmt_misc: the tests that re-execute themselves will fail (apt-get install qemu-user-binfmt; run as root)"
  export "CARGO_TARGET_${ENV_TARGET}_RUNNER=$QEMU"
  # panic_unwind: the test harness catches panics. Doctests are skipped:
  # rustdoc does not get the target's RUSTFLAGS.
  cargo +nightly test -p hypha-engine -p hypha-net --target "$TARGET" --lib --tests \
    -Zbuild-std=std,panic_unwind -Zbuild-std-features=llvm-libunwind
  exit 0
fi
cargo +nightly build --profile deploy -p hypha-server --target "$TARGET" \
  -Zbuild-std=std,panic_abort -Zbuild-std-features=llvm-libunwind
ls -l "$CARGO_TARGET_DIR/$TARGET/deploy/hypha"
