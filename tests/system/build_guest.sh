#!/bin/bash
# Prepare everything a system-test guest needs, idempotently, and print where it is.
#
#   tests/system/build_guest.sh               # install/download/build if needed, print KEY=VALUE lines
#   tests/system/build_guest.sh --no-install  # same, but fail (exit 2) instead of installing packages
#
# 1. apt-get install (as root, only what is missing): qemu-system-x86 qemu-utils kmod cpio
#    busybox-static udev systemd.
# 2. apt-get download the versioned linux-image-6.1.*-amd64 that linux-image-amd64 currently points
#    to (never installed on the host), dpkg-deb -x it into the cache, prune the module tree to the
#    storage/filesystem drivers the tests use, depmod it.
# 3. Build an initramfs: busybox-static + tests/system/guest_init.sh as /init + the module closure
#    (modprobe --show-depends) of the drivers the guest needs before it can reach the host root.
#
# Cache: $WIPE_AGENT_TEST_CACHE, else $XDG_CACHE_HOME/wipe-agent-tests, else
# /var/cache/wipe-agent-tests (root) or ~/.cache/wipe-agent-tests. The kernel tree is keyed by the
# kernel package name + version; the initramfs by a hash of that, busybox's version, the module list
# and the init script. A warm run only checks and prints (well under a second plus apt-cache time).
#
# Environment:
#   WIPE_AGENT_GUEST_KERNEL_PKG   use this linux-image package instead of the one apt offers
#   WIPE_AGENT_GUEST_OFFLINE=1    never call apt; use the newest complete kernel already cached
#
# Output on stdout (logs go to stderr): KERNEL=... INITRD=... KVER=... MODULES=... CACHE=...
# Exit status: 0 ready; 2 cannot prepare (not root and something is missing, apt failed, ...).
set -euo pipefail

INSTALL=1
case "${1:-}" in
    --no-install) INSTALL=0 ;;
    "") ;;
    *) echo "usage: $0 [--no-install]" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT_SCRIPT="$HERE/guest_init.sh"

# Loaded at boot from the initramfs, in dependency order (scsi_debug only when asked for).
INITRAMFS_MODULES=(virtio_pci virtio_blk virtio_scsi 9p 9pnet_virtio overlay loop nvme ahci sd_mod sg
    scsi_debug)
# systemd: PID 1 of Guest(init="systemd") guests (the host need not run it).
HOST_PACKAGES=(qemu-system-x86 qemu-utils kmod cpio busybox-static udev systemd)

log() { printf 'build_guest: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

if [ -n "${WIPE_AGENT_TEST_CACHE:-}" ]; then
    CACHE=$WIPE_AGENT_TEST_CACHE
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
    CACHE=$XDG_CACHE_HOME/wipe-agent-tests
elif [ "$(id -u)" = 0 ]; then
    CACHE=/var/cache/wipe-agent-tests
else
    CACHE=$HOME/.cache/wipe-agent-tests
fi
mkdir -p "$CACHE/kernel" "$CACHE/initramfs" "$CACHE/download"
# One builder at a time (parallel pytest workers, two CI jobs on one runner).
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "could not lock $CACHE/.lock"

APT_UPDATED=0
apt_update() {
    [ "$APT_UPDATED" = 1 ] && return 0
    log "apt-get update"
    apt-get update -q >&2 || die "apt-get update failed"
    APT_UPDATED=1
}

# --- 1. host packages -------------------------------------------------------------------------
missing=()
for package in "${HOST_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (run tests/system/build_guest.sh as root to install them)"
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}) and not root to install them"
    [ "${WIPE_AGENT_GUEST_OFFLINE:-0}" = 1 ] && die "missing packages (${missing[*]}) in offline mode"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        apt_update
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || die "apt-get install failed"
    fi
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found after install"

# --- 2. kernel --------------------------------------------------------------------------------
kernel_package=""
kernel_version=""
if [ "${WIPE_AGENT_GUEST_OFFLINE:-0}" = 1 ]; then
    # Most recently used complete tree (.complete is touched on every use).
    newest=$( (ls -1t "$CACHE"/kernel/*/.complete 2>/dev/null || true) | head -n1)
    newest=${newest%/.complete}
    newest=${newest##*/}
    [ -n "$newest" ] || die "offline mode and no complete kernel in $CACHE/kernel"
    kernel_package=${newest%%_*}
    kernel_version=${newest#*_}
else
    kernel_package=${WIPE_AGENT_GUEST_KERNEL_PKG:-}
    if [ -z "$kernel_package" ]; then
        apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt_update
        kernel_package=$(apt-cache depends linux-image-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\.[0-9]+-[0-9]+-amd64$/ {print $2; exit}')
        [ -n "$kernel_package" ] || die "apt offers no linux-image-6.1.*-amd64 (through linux-image-amd64)"
    fi
    kernel_version=$(apt-cache show --no-all-versions "$kernel_package" 2>/dev/null |
        awk '$1 == "Version:" {print $2; exit}')
    [ -n "$kernel_version" ] || die "apt-cache knows no version of $kernel_package"
fi
KVER=${kernel_package#linux-image-}
case "$KVER" in 6.1.*-amd64) ;; *) die "unexpected kernel package $kernel_package" ;; esac

kernel_dir="$CACHE/kernel/${kernel_package}_${kernel_version}"
if [ ! -e "$kernel_dir/.complete" ]; then
    started=$SECONDS
    rm -rf "$kernel_dir" "$kernel_dir.tmp"
    download="$CACHE/download"
    rm -f "$download"/*.deb
    log "downloading $kernel_package $kernel_version"
    # As root apt-get download warns that it cannot drop to _apt in a root-owned directory.
    chown _apt "$download" 2>/dev/null || true
    (cd "$download" && apt-get download -q "$kernel_package=$kernel_version" >&2) ||
        { apt_update; (cd "$download" && apt-get download -q "$kernel_package=$kernel_version" >&2); } ||
        die "apt-get download $kernel_package failed"
    deb=$(ls "$download"/*.deb | head -n1)
    log "extracting $(basename "$deb")"
    mkdir -p "$kernel_dir.tmp"
    dpkg-deb -x "$deb" "$kernel_dir.tmp"
    rm -f "$deb"
    # dpkg-deb may create lib/ or usr/lib/; normalise to lib/modules for depmod -b.
    if [ ! -d "$kernel_dir.tmp/lib/modules/$KVER" ] && [ -d "$kernel_dir.tmp/usr/lib/modules/$KVER" ]; then
        mkdir -p "$kernel_dir.tmp/lib/modules"
        mv "$kernel_dir.tmp/usr/lib/modules/$KVER" "$kernel_dir.tmp/lib/modules/"
    fi
    modules="$kernel_dir.tmp/lib/modules/$KVER"
    [ -d "$modules/kernel" ] || die "no module tree in $deb"
    # Keep what storage tests can use (block, SCSI incl. scsi_debug, ATA, NVMe incl. nvmet, md/dm
    # incl. dm-flakey/dm-error, filesystems, 9p, crypto, lib); drop the rest (~5x smaller cache).
    (
        cd "$modules/kernel"
        for entry in *; do
            case "$entry" in arch | block | crypto | fs | lib | mm | kernel | drivers | net) ;; *) rm -rf "$entry" ;; esac
        done
        if [ -d net ]; then (cd net && for entry in *; do [ "$entry" = 9p ] || rm -rf "$entry"; done); fi
        (cd drivers && for entry in *; do
            case "$entry" in ata | block | nvme | scsi | virtio | md | target | char | base | misc) ;; *) rm -rf "$entry" ;; esac
        done)
    )
    rm -rf "$kernel_dir.tmp/usr/share" "$kernel_dir.tmp/usr/lib/linux" 2>/dev/null || true
    depmod -b "$kernel_dir.tmp" "$KVER" || die "depmod failed"
    [ -e "$kernel_dir.tmp/boot/vmlinuz-$KVER" ] || die "no /boot/vmlinuz-$KVER in $deb"
    touch "$kernel_dir.tmp/.complete"
    mv "$kernel_dir.tmp" "$kernel_dir"
    log "kernel ready in $((SECONDS - started)) s: $kernel_dir"
fi
modules="$kernel_dir/lib/modules/$KVER"
# Kernel trees unused for 14 days (superseded point releases) go; "used" = .complete touched.
touch "$kernel_dir/.complete"
find "$CACHE/kernel" -mindepth 2 -maxdepth 2 -name .complete -mtime +14 -printf '%h\n' 2>/dev/null |
    while read -r stale; do
        [ "$stale" = "$kernel_dir" ] || { log "removing stale $stale"; rm -rf "$stale"; }
    done

# --- 3. initramfs -----------------------------------------------------------------------------
[ -r "$INIT_SCRIPT" ] || die "missing $INIT_SCRIPT"
busybox_binary=/bin/busybox
[ -x "$busybox_binary" ] || busybox_binary=$(command -v busybox || true)
[ -n "$busybox_binary" ] && [ -x "$busybox_binary" ] || die "busybox not found"
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)
key=$(printf '%s\n' "$kernel_package" "$kernel_version" "$busybox_version" "${INITRAMFS_MODULES[*]}" |
    cat - "$INIT_SCRIPT" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
initrd="$CACHE/initramfs/initramfs-$KVER-$key.cpio.gz"
if [ ! -e "$initrd" ]; then
    started=$SECONDS
    stage=$(mktemp -d "$CACHE/initramfs/stage.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,dev,proc,sys,newroot,lower,rw,modules}
    cp "$busybox_binary" "$stage/bin/busybox"
    ln -s busybox "$stage/bin/sh"
    cp "$INIT_SCRIPT" "$stage/init"
    chmod 755 "$stage/init"
    : >"$stage/modules/order"
    for module in "${INITRAMFS_MODULES[@]}"; do
        modprobe -d "$kernel_dir" -S "$KVER" --show-depends "$module" >"$stage/deps" ||
            die "modprobe --show-depends $module failed"
        while read -r verb path _; do
            [ "$verb" = insmod ] || continue # "builtin NAME" needs nothing
            name=$(basename "$path")
            case "$name" in *.ko) ;; *) die "compressed module $name: add a decompression step" ;; esac
            if [ ! -e "$stage/modules/$name" ]; then
                cp "$path" "$stage/modules/$name"
                echo "$name" >>"$stage/modules/order"
            fi
        done <"$stage/deps"
    done
    rm -f "$stage/deps"
    (cd "$stage" && find . -mindepth 1 | sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$stage"
    trap - EXIT
    log "initramfs ready in $((SECONDS - started)) s: $initrd ($(du -h "$initrd" | cut -f1))"
fi
# Builds for other keys (older init scripts, kernels) unused for a day are dead weight; touched on
# every use so a long session of another checkout keeps its own.
touch "$initrd"
find "$CACHE/initramfs" -name "initramfs-*.cpio.gz" ! -path "$initrd" -mtime +1 -delete 2>/dev/null || true

echo "KERNEL=$kernel_dir/boot/vmlinuz-$KVER"
echo "INITRD=$initrd"
echo "KVER=$KVER"
echo "MODULES=$modules"
echo "CACHE=$CACHE"
