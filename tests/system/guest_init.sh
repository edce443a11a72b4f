#!/bin/sh
# /init of the system-test initramfs (busybox sh, PID 1). Built into the initramfs by
# build_guest.sh; changing this file changes the cache key, so the next run rebuilds.
#
# 1. load the storage/virtio/9p/overlay modules listed in /modules/order;
# 2. mount the host root (9p tag "hostroot", read-only) under an overlay whose upper layer is tmpfs,
#    so the guest can write anywhere without touching the host;
# 3. mount the writable results share (9p tag "results") at /results inside that root;
# 4. read /results/.control/boot.conf (written by the harness): SCSI_DEBUG (module options, loaded
#    only if the variable is set), MODULES_DIR (host path of the full module tree, bind-mounted on
#    /lib/modules/$(uname -r) so modprobe works in the guest);
# 5. switch_root into it (stage 2, still this script), run /results/.control/main.sh, print the
#    exit marker, power off. With GUEST_INIT=systemd (boot.conf), stage 2 instead execs
#    /results/.control/systemd/boot.sh, which makes the host's systemd PID 1 with a minimal target;
#    a unit of that target calls this script again as "init main" to run main.sh and power off.
# Any failure prints the marker with rc 125 and powers off, so the host never waits for a timeout.
say() { echo "wipe-agent-init: $*"; }
finish() {
    echo "WIPE-AGENT-GUEST-DONE rc=$1"
    sync
    $BUSYBOX poweroff -f
    $BUSYBOX sleep 5
    exit "$1" # panic=-1 + -no-reboot ends QEMU if poweroff did not
}
fail() {
    say "FAILED: $*"
    finish 125
}

if [ "${1:-}" = stage2 ] || [ "${1:-}" = main ]; then
    # Stage 2: PID 1 inside the overlaid host root (after switch_root); host tools from here on.
    # "main": the same, run by systemd's wipe-agent-guest-main.service instead of by PID 1.
    BUSYBOX=/run/wipe-agent-guest/busybox
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    if [ "$1" = stage2 ] && [ -n "${MODULES_DIR:-}" ]; then
        kernel_release=$($BUSYBOX uname -r)
        $BUSYBOX mkdir -p "/lib/modules/$kernel_release" &&
            $BUSYBOX mount --bind "$MODULES_DIR" "/lib/modules/$kernel_release" ||
            say "bind-mount of $MODULES_DIR failed; modprobe will not work in the guest"
    fi
    if [ "$1" = stage2 ] && [ "${GUEST_INIT:-}" = systemd ]; then
        exec /bin/sh /results/.control/systemd/boot.sh || fail "exec systemd/boot.sh"
    fi
    /bin/sh /results/.control/main.sh
    finish $?
fi

BUSYBOX=/bin/busybox
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r module; do
    [ "$module" = scsi_debug.ko ] && continue
    insmod "/modules/$module" || say "insmod $module failed"
done </modules/order

# cache=loose: the host root is read-only for the guest's lifetime, so caching is safe and it
# makes Python imports over 9p several times faster under TCG.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower ||
    fail "mount 9p hostroot"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
    fail "mount overlay"
mkdir -p /newroot/results
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /newroot/results ||
    fail "mount 9p results"

control=/newroot/results/.control
if [ -r "$control/boot.conf" ]; then
    . "$control/boot.conf"
fi
if [ -n "${SCSI_DEBUG+set}" ]; then
    # shellcheck disable=SC2086 # word splitting of the option list is intended
    insmod /modules/scsi_debug.ko $SCSI_DEBUG || fail "insmod scsi_debug $SCSI_DEBUG"
fi

mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
# Fresh /run (the host's udev database and sockets must not leak in). /tmp stays the host's,
# copy-on-write through the overlay: a checkout or venv under /tmp must remain visible.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/run/wipe-agent-guest
cp /bin/busybox /init /newroot/run/wipe-agent-guest/
[ -r "$control/main.sh" ] || fail "no $control/main.sh"
# switch_root (not a plain chroot): PID 1 must live in the new root, otherwise systemd tools
# (udevadm trigger, ...) detect "running in chroot" and refuse to work.
export MODULES_DIR GUEST_INIT
exec switch_root /newroot /run/wipe-agent-guest/busybox sh /run/wipe-agent-guest/init stage2
