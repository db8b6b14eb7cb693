#!/bin/sh
# Install bpf-linker, which links the listns-ebpf crate, against the LLVM
# shared library that the rustup `nightly` toolchain ships.
#
# `cargo install bpf-linker` alone needs a system LLVM of the same major
# version as rustc's (22 for nightly 1.97), which Debian 12 lacks: it ships
# LLVM 14. The nightly toolchain carries libLLVM as a shared library, so this
# script points LLVM_PREFIX at a directory that links to it.
#
# Safe to run again: it does nothing when the installed bpf-linker runs and
# was linked against the current nightly's libLLVM. After a nightly update
# (a new libLLVM soname) it relinks and reinstalls.
#
# Environment:
#   BPF_LINKER_VERSION  crate version to install (default 0.13.0)
#   BPF_LINKER_LLVM     directory for the libLLVM links
#                       (default ${CARGO_HOME:-$HOME/.cargo}/bpf-linker-llvm)
set -eu

version="${BPF_LINKER_VERSION:-0.13.0}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
prefix="${BPF_LINKER_LLVM:-$cargo_home/bpf-linker-llvm}"

# -Z build-std=core in the eBPF build needs the nightly standard library source.
rustup toolchain list | grep -q '^nightly' || {
    echo "error: the rustup 'nightly' toolchain is missing; install it with 'rustup toolchain install nightly'" >&2
    exit 1
}
rustup component add rust-src --toolchain nightly >/dev/null

sysroot_lib="$(rustup run nightly rustc --print sysroot)/lib"
llvm_lib="$(ls "$sysroot_lib"/libLLVM.so.* 2>/dev/null | head -n 1)"
if [ -z "$llvm_lib" ]; then
    echo "error: no libLLVM.so.* in $sysroot_lib; the nightly toolchain is expected to ship LLVM as a shared library" >&2
    exit 1
fi
soname="$(basename "$llvm_lib")"
# The soname reads libLLVM.so.MAJOR.MINOR-rust-...; llvm-sys needs the major version as a cargo feature.
llvm_major="$(echo "$soname" | sed -n 's/^libLLVM\.so\.\([0-9][0-9]*\)\..*/\1/p')"
if [ -z "$llvm_major" ]; then
    echo "error: cannot read the LLVM major version from $soname" >&2
    exit 1
fi

mkdir -p "$prefix/lib"
# libLLVM.so is what the build links against; the soname link is what the
# installed binary's rpath finds at run time.
ln -sfn "$llvm_lib" "$prefix/lib/libLLVM.so"
ln -sfn "$llvm_lib" "$prefix/lib/$soname"

stamp="$prefix/installed"
expected="bpf-linker $version llvm-$llvm_major $soname"
if command -v bpf-linker >/dev/null 2>&1 \
    && bpf-linker --version >/dev/null 2>&1 \
    && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$expected" ]; then
    echo "bpf-linker $version is installed ($(command -v bpf-linker), $soname)"
    exit 0
fi

LLVM_PREFIX="$prefix" cargo install --force --locked bpf-linker \
    --version "$version" --no-default-features --features "llvm-$llvm_major"
echo "$expected" >"$stamp"

bpf-linker --version
