#!/usr/bin/env bash
# Installs what a PiFoundry make target needs, only when something is missing.
# Usage: scripts/install-prereqs.sh [test|stemcell|lab|bench|cross|api|fuzz]...   (default: test)
# Idempotent and quiet when everything is present. Needs root (or sudo) only to install.
set -euo pipefail

want_apt=()
want_targets=()
want_schemathesis=
want_cargo=()

# Tools from the registries, pinned; the tests look for schemathesis at this path.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=/var/cache/pifoundry/tools/schemathesis
CARGO_DENY_VERSION=0.20.2
CARGO_FUZZ_VERSION=0.13.2

for set in "${@:-test}"; do
  case "$set" in
    test)
      # cross compilers and Go make real ARM/x86 ELF fixtures; qemu-user runs them;
      # the stemcell stages are exercised by the tests too; curl and tftp-hpa are the real
      # TFTP clients of crates/tftp's tests; dnsmasq, busybox (udhcpc) and iproute2
      # (namespaces) for powerd's Pi-network tests.
      want_apt+=(gcc-arm-linux-gnueabi libc6-dev-armel-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross
                 golang-go qemu-user-static binfmt-support
                 mmdebstrap arch-test dosfstools mtools e2fsprogs fdisk
                 device-tree-compiler qemu-system-arm cpio xz-utils zstd bzip2 git
                 curl ca-certificates tftp-hpa python3 python3-venv g++
                 dnsmasq-base busybox)
      # powerd's block layer: qemu-img/qemu-nbd serve, qemu-io and libnbd's nbdinfo/nbdcopy
      # read, nft and ip make the access test's rules and namespaces
      want_apt+=(qemu-utils libnbd-bin nftables iproute2)
      want_schemathesis=1
      want_cargo+=("cargo-deny@$CARGO_DENY_VERSION" "cargo-fuzz@$CARGO_FUZZ_VERSION") ;;
    fuzz)
      # libFuzzer is built from source by libfuzzer-sys: a C++ compiler
      want_apt+=(g++ gcc-arm-linux-gnueabi libc6-dev-armel-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
      want_cargo+=("cargo-fuzz@$CARGO_FUZZ_VERSION") ;;
    api)
      want_apt+=(python3 python3-venv)
      want_schemathesis=1 ;;
    stemcell)
      want_apt+=(mmdebstrap arch-test qemu-user-static binfmt-support golang-go
                 dosfstools mtools e2fsprogs fdisk device-tree-compiler
                 qemu-system-arm cpio xz-utils zstd ca-certificates) ;;
    lab)
      # the virtual Pi lab: namespaces and taps, the Pi network's DHCP, powerd's exports and
      # rules, the emulated Pi Zeros, curl as their firmware's TFTP client, the DTB patch
      want_apt+=(iproute2 dnsmasq-base qemu-utils nftables qemu-system-arm curl device-tree-compiler mtools) ;;
    bench)
      # dnsmasq-base: dnsmasq's binary without its service, the TFTP peer of bench-tftp.sh
      want_apt+=(gzip tar time bc curl dnsmasq-base iproute2)
      # bench-nbd.sh: qemu-nbd and nbdcopy
      want_apt+=(qemu-utils libnbd-bin) ;;
    cross)
      want_targets+=(aarch64-unknown-linux-musl)
      want_targets+=(x86_64-unknown-linux-musl) ;;
    *) echo "install-prereqs: unknown set '$set' (test|stemcell|lab|bench|cross|api|fuzz)" >&2; exit 2 ;;
  esac
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing_apt() {
  missing=()
  for p in "${want_apt[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
}
# Two rounds: installing one package can remove another that was there (Debian's
# qemu-system-arm 7.2 replaces a backports qemu-utils 10 that the image shipped with).
for round in 1 2; do
  missing_apt
  [ ${#missing[@]} -gt 0 ] || break
  echo "install-prereqs: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # several apt runs at once fail on the dpkg lock: wait for it instead
  [ "$round" -gt 1 ] || as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
done
missing_apt
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-prereqs: still missing after installing: ${missing[*]} (apt removes them again)" >&2
  exit 1
fi

# qemu-user through binfmt_misc: the kernel has it built in but does not mount it at boot.
if printf '%s\n' "${want_apt[@]}" | grep -qx qemu-user-static; then
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-arm ] || [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    as_root update-binfmts --enable >/dev/null 2>&1 || true
  fi
fi

command -v cargo >/dev/null || { echo "install-prereqs: cargo not found; install Rust with rustup" >&2; exit 1; }
for comp in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp" >/dev/null
done
cargo nextest --version >/dev/null 2>&1 || cargo install --locked cargo-nextest >/dev/null
for t in "${want_targets[@]}"; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t" >/dev/null
done
for c in "${want_cargo[@]}"; do
  name=${c%@*} version=${c#*@}
  "$name" --version 2>/dev/null | grep -qF " $version" ||
    cargo install --locked --quiet "$name" --version "$version" >/dev/null
done

# schemathesis in its own venv (Debian's python3), so that no system package is touched
if [ -n "$want_schemathesis" ] &&
   ! "$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null | grep -qF " $SCHEMATHESIS_VERSION"; then
  echo "install-prereqs: installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV" >&2
  as_root mkdir -p "$(dirname "$SCHEMATHESIS_VENV")"
  as_root /usr/bin/python3 -m venv --clear "$SCHEMATHESIS_VENV"
  as_root "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION"
fi
