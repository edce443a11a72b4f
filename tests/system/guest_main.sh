#!/bin/sh
# Runs inside the guest (host root overlaid, after switch_root) as a child of PID 1; the harness
# copies it to /results/.control/main.sh at every boot, so editing it needs no initramfs rebuild.
#
# Protocol with tests/system/qemu.py, all through the writable 9p share mounted at /results:
#   .control/guest.env      sourced first (exports from the harness: manifest path, udev on/off, ...)
#   .control/ready          created once udev has settled; the host waits for it
#   .control/cmd.N.sh       command N (N = 0, 1, 2, ...), written atomically by the host; started
#                           at once in the background, so several may run at the same time
#   .control/cmd.N.out      its combined stdout/stderr
#   .control/cmd.N.rc       its exit status, written atomically when it has finished
#   .control/shutdown       the host asks for power-off; we exit and PID 1 powers off
# Markers on the serial console: WIPE-AGENT-GUEST-READY, WIPE-AGENT-GUEST-EXIT n=N rc=RC.
control=/results/.control
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 WIPE_AGENT_IN_GUEST=1
[ -r "$control/guest.env" ] && . "$control/guest.env"

uptime() { read -r seconds _ </proc/uptime && echo "wipe-agent-guest: $1 at ${seconds}s"; }
uptime "main.sh started"
udev_pid=""
if [ "${WIPE_AGENT_GUEST_UDEV:-1}" = 1 ] && [ -x /lib/systemd/systemd-udevd ]; then
    if [ "${WIPE_AGENT_GUEST_INIT:-busybox}" != systemd ]; then
        /lib/systemd/systemd-udevd --daemon --resolve-names=never
        uptime "udevd started"
        udev_pid=$(cat /run/udev/udevd.pid 2>/dev/null || pidof systemd-udevd || true)
    fi # under systemd, systemd-udevd.service runs it (this unit is ordered after it)
    # Storage subsystems only: a full trigger costs ~4 s under TCG and autoloads unrelated modules.
    udevadm trigger --action=add \
        --subsystem-match=block --subsystem-match=nvme --subsystem-match=nvme-subsystem \
        --subsystem-match=scsi --subsystem-match=scsi_device --subsystem-match=scsi_disk \
        --subsystem-match=scsi_generic --subsystem-match=scsi_host --subsystem-match=bsg \
        --subsystem-match=ata_port --subsystem-match=ata_link --subsystem-match=ata_device
    udevadm settle --timeout=60 || echo "wipe-agent-guest: udevadm settle timed out"
fi

uptime "udev settled"
touch "$control/ready"
echo "WIPE-AGENT-GUEST-READY"

run_command() {
    /bin/sh "$control/cmd.$1.sh" >"$control/cmd.$1.out" 2>&1 </dev/null
    rc=$?
    echo "$rc" >"$control/cmd.$1.rc.tmp"
    mv "$control/cmd.$1.rc.tmp" "$control/cmd.$1.rc"
    echo "WIPE-AGENT-GUEST-EXIT n=$1 rc=$rc"
}

# Commands run concurrently (each in the background): the host may start a monitor, hot-plug a
# drive, then wait for the monitor's result. The idle loop forks only sleep, 10 times a second:
# every fork+exec costs tens of milliseconds under TCG.
n=0
while :; do
    if [ -e "$control/cmd.$n.sh" ]; then
        run_command "$n" &
        n=$((n + 1))
    elif [ -e "$control/shutdown" ]; then
        break
    else
        sleep 0.1
    fi
done

if [ -n "$udev_pid" ]; then
    kill "$udev_pid" 2>/dev/null || true
fi
sync
exit 0
