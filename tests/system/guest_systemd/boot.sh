#!/bin/sh
# PID 1 of a systemd-mode guest (Guest(init="systemd")): exec'd by guest_init.sh's stage 2 after
# switch_root, it hands PID 1 to the host's own systemd with a deliberately small world, not the
# host's boot: only the units in /run/wipe-agent-guest/units (journald, udevd, our targets and
# the harness's command loop) and /run/systemd/system (where guest tests install units under
# test). No generators: they would turn the host's fstab, gettys, ... into units. The harness
# copies this directory into the results share at every boot (no initramfs rebuild).
units=/run/wipe-agent-guest/units
# A host that is itself a container leaves /.dockerenv in the shared root: systemd would believe it
# runs in a container and behave as there. Removing it touches only the tmpfs overlay.
rm -f /.dockerenv /run/.containerenv
empty=/run/wipe-agent-guest/empty
mkdir -p "$units" "$empty" /run/systemd/system
for unit in systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket; do
    ln -sf "/lib/systemd/system/$unit" "$units/$unit"
done
cp /results/.control/systemd/*.target /results/.control/systemd/*.service "$units/"
export SYSTEMD_UNIT_PATH="/run/systemd/system:$units"
export SYSTEMD_GENERATOR_PATH="$empty" SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$empty"
echo "wipe-agent-init: systemd as PID 1 (units: $SYSTEMD_UNIT_PATH)"
exec /lib/systemd/systemd --unit=wipe-agent-guest.target
