#!/usr/bin/env bash
# Builds the ktstr test kernel from a Linux >= 6.12 source tree.
#   kernel/build.sh [--slow-kvm] SRC_DIR OUT_DIR
# Debian: apt-get install linux-source-6.12 bc flex bison libelf-dev libssl-dev dwarves
#         tar xf /usr/src/linux-source-6.12.tar.xz   (~17 min to build on 2 cores)
# OUT_DIR gets bzImage, vmlinux (symbols + BTF, DWARF stripped), System.map, config.
# Then: export KTSTR_KERNEL=OUT_DIR/vmlinux
set -euo pipefail
here=$(dirname "$(realpath "$0")")
fragments=("$here/ktstr.kconfig")
if [ "${1:-}" = "--slow-kvm" ]; then fragments+=("$here/slow-kvm.kconfig"); shift; fi
[ $# -eq 2 ] || { echo "usage: $0 [--slow-kvm] SRC_DIR OUT_DIR" >&2; exit 2; }
src=$(realpath "$1"); out=$(realpath -m "$2")
mkdir -p "$out"
cd "$src"
make x86_64_defconfig >/dev/null
make kvm_guest.config >/dev/null
scripts/kconfig/merge_config.sh -m .config "${fragments[@]}" >/dev/null
make olddefconfig >/dev/null
grep -q '^CONFIG_SCHED_CLASS_EXT=y' .config || { echo "kernel tree lacks sched_ext (need >= 6.12)" >&2; exit 1; }
make -j"$(nproc)" bzImage
cp arch/x86/boot/bzImage System.map "$out/"
cp .config "$out/config"
objcopy --strip-debug vmlinux "$out/vmlinux"
echo "kernel $(make -s kernelrelease) -> $out"
