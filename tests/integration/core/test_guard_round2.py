"""What the red team still broke in the guard after issue 12 (round 2), each on real loop devices.

- NEW-R2-4: a buffered write to a *partition* through a descriptor parked in flight (no process
  shows it in /proc) sits in the partition's own page cache while the job reads its write counter;
- NEW-R2-1: a loop's backing file written through a descriptor parked in flight (``pwrite`` or a
  ``MAP_SHARED`` mapping) during verification, then closed: no open() for the watch to see;
- NEW-R2-5: a file-backed loop whose backing file cannot be watched is refused, not wiped blind;
- G13: a loop over a window of its file (offset, size limit) is refused, not certified as the file;
- G4: a loop over a file on the station's own system disk is refused;
- G8: a disk mounted only in another mount namespace is refused naming that mount.

Each job that ran proves the write was real (it reads back) and that the job did not certify over
it; each refusal proves with a checksum that the protected bytes are unchanged.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.discovery import loops
from agent.discovery.guard import Guard
from tests.conftest import LoopDevice, run_cli
from tests.integration.core.test_guard_identity import SECRET, _run_with, sha256, wipe_refused

pytestmark = pytest.mark.root

# A holder that parks its descriptor in flight in a Unix socket (attack G7: nothing in /proc/*/fd),
# and on "go" receives it and writes SECRET at OFFSET: "keep" writes buffered without fsync and parks
# the descriptor again (closed only at stdin's end: no last-close flush); "pwrite" and "mmap" write,
# flush and close everything.
IN_FLIGHT_HOLDER = """
import array, mmap, os, socket, sys
path, mode, offset = sys.argv[1], sys.argv[2], int(sys.argv[3])
secret = b"OFFICIAL-SENSITIVE".ljust(4096, b"#")
left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
def park(fd):
    left.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    os.close(fd)
def fetch():
    _, ancillary, _, _ = right.recvmsg(1, socket.CMSG_LEN(4))
    return array.array("i", ancillary[0][2][:4])[0]
park(os.open(path, os.O_RDWR))
print("parked", flush=True)
assert sys.stdin.readline().strip() == "go"
fd = fetch()
if mode == "keep":
    os.pwrite(fd, secret, offset)
    park(fd)
elif mode == "mmap":
    mapping = mmap.mmap(fd, offset + 4096)
    mapping[offset:offset + 4096] = secret
    mapping.flush()
    mapping.close()
    os.close(fd)
else:
    os.pwrite(fd, secret, offset)
    os.fsync(fd)
    os.close(fd)
print("written", flush=True)
sys.stdin.read()
if mode == "keep":
    os.close(fetch())
"""


class InFlightHolder:
    """The holder above as a subprocess; :meth:`write` is the ``during`` hook of a job."""

    def __init__(self, path: Path | str, mode: str, offset: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", IN_FLIGHT_HOLDER, str(path), mode, str(offset)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "parked"

    def write(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "written"

    def close(self) -> None:
        """Let it close its descriptor (the last close: the kernel writes back what is still dirty)."""
        self.process.communicate(timeout=30)


def _read_direct(path: str, offset: int) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        import mmap

        buffer = mmap.mmap(-1, 4096)
        os.preadv(descriptor, [buffer], offset)
        return bytes(buffer)
    finally:
        os.close(descriptor)


@pytest.fixture
def partitioned(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A 16 MiB loop with one GPT partition (1 MiB..9 MiB), and a private node of that partition."""
    backing = Path("/dev/shm") / f"wipe-agent-test-{os.getpid()}-{tmp_path.name}-parted.img"
    backing.write_bytes(os.urandom(16 << 20))
    device = subprocess.run(["losetup", "--find", "--show", "--partscan", "--direct-io=on", str(backing)],
                            check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(["sfdisk", "-q", device], input="label: gpt\n1MiB,8MiB\n", text=True, check=True,
                       capture_output=True)
        subprocess.run(["partx", "-u", device], check=True, capture_output=True)  # BLKPG: the partition exists now
        name = Path(device).name
        number = (Path("/sys/block") / name / f"{name}p1" / "dev").read_text().strip()
        major, minor = (int(part) for part in number.split(":"))
        node = tmp_path / "partition-node"
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(major, minor))
        yield device, node
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        backing.unlink(missing_ok=True)


# NEW-R2-4 ------------------------------------------------------------------------------------------

def test_a_buffered_write_to_a_partition_through_a_descriptor_in_flight_fails_the_job(
        partitioned: tuple[str, Path], state_dir: Path) -> None:
    device_path, partition = partitioned
    holder = InFlightHolder(partition, "keep", 4 << 20)
    try:
        job = _run_with(LoopDevice(Path("/dev/null"), device_path), state_dir, holder.write, "verify")
    finally:
        holder.close()
    reason = job.reason or ""
    name = Path(device_path).name
    assert job.state == "failed" and job.route == "hold", reason
    assert f"another process wrote 8 sectors (4096 bytes) to {name} during the job, after verification" in reason
    assert job.certificate_path is None
    assert _read_direct(device_path, (1 << 20) + (4 << 20)) == SECRET  # the write was real


# NEW-R2-1 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["pwrite", "mmap"])
def test_a_backing_file_written_through_a_descriptor_in_flight_fails_the_job(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, mode: str) -> None:
    device = loop_factory(16 << 20)
    holder = InFlightHolder(device.backing, mode, 256 * 4096)
    try:
        job = _run_with(device, state_dir, holder.write, "verify")
    finally:
        holder.close()
    reason = job.reason or ""
    assert job.state == "failed" and job.route == "hold", reason
    assert f"the backing file of {Path(device.path).name} was modified after the last write" in reason, reason
    assert "opened the backing file" not in reason  # no open() happened during the job: the stat caught it
    assert job.certificate_path is None
    assert device.read(256 * 4096, 4096) == SECRET


def test_a_backing_file_written_through_a_descriptor_in_flight_during_the_overwrite_fails_the_job(
        loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    # written where the pass already went by, before the last write: the inode's times are settled only
    # after it, so the write itself must be seen (FAN_MODIFY names the writing process)
    device = loop_factory(16 << 20)
    holder = InFlightHolder(device.backing, "pwrite", 256 * 4096)
    try:
        job = _run_with(device, state_dir, holder.write, "overwrite")
        pid = holder.process.pid
    finally:
        holder.close()
    reason = job.reason or ""
    assert job.state == "failed" and job.route == "hold", reason
    assert f"pid {pid} (python" in reason and f"wrote the backing file of {Path(device.path).name}" in reason, reason
    assert job.certificate_path is None
    assert device.read(256 * 4096, 4096) == SECRET


def test_a_buffered_loops_own_writes_are_not_another_writer(loop_factory: Callable[..., LoopDevice],
                                                             state_dir: Path) -> None:
    # without direct I/O the loop driver writes its file from kernel workers; kernels whose loop writes
    # through vfs_iter_write raise FAN_MODIFY for them (this one may not): never counted as another writer
    device = loop_factory(16 << 20, direct_io=False)
    job = _run_with(device, state_dir, lambda: None, "overwrite")
    assert job.state == "sanitised" and job.route == "reuse", job.reason
    assert device.read(0, 16 << 20) == bytes(16 << 20)


# G13 -----------------------------------------------------------------------------------------------

@pytest.fixture
def case_file(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB "case file" image in /dev/shm (tmpfs: allowed as a backing file)."""
    path = Path("/dev/shm") / f"wipe-agent-test-{os.getpid()}-{tmp_path.name}-case.img"
    path.write_bytes((b"CASE-FILE " * ((4 << 20) // 10 + 1))[:4 << 20])
    yield path
    path.unlink(missing_ok=True)


@contextmanager
def attached(*args: str) -> Iterator[str]:
    device = subprocess.run(["losetup", "--find", "--show", *args], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


@pytest.mark.parametrize("window", [["--offset", "1048576"], ["--sizelimit", "2097152"],
                                    ["--offset", "1048576", "--sizelimit", "1048576"]])
def test_a_loop_over_a_window_of_its_file_is_refused(case_file: Path, state_dir: Path, window: list[str]) -> None:
    before = sha256(case_file)
    with attached(*window, str(case_file)) as device:
        data = wipe_refused(device, "of the 4194304 bytes of its backing file", "not a whole medium")
        assert "--offset/--sizelimit" in str(data["reason"])
    assert sha256(case_file) == before


def test_a_loop_over_the_whole_file_with_a_size_limit_equal_to_it_is_not_a_window(case_file: Path) -> None:
    with attached("--sizelimit", str(4 << 20), str(case_file)) as device:
        reasons = Guard().assess(device).reasons
        assert not [reason for reason in reasons if "whole medium" in reason], reasons


def test_a_file_grown_after_losetup_is_not_a_whole_medium(case_file: Path, state_dir: Path) -> None:
    with attached(str(case_file)) as device:
        with open(case_file, "ab") as handle:
            handle.write(b"NEW EVIDENCE".ljust(1 << 20, b"."))  # the loop still shows the first 4 MiB
        before = sha256(case_file)
        wipe_refused(device, f"shows only 4194304 of the {5 << 20} bytes of its backing file", "losetup -c")
        assert sha256(case_file) == before


def test_a_file_with_a_partial_last_sector_is_not_a_whole_medium(case_file: Path, state_dir: Path) -> None:
    with open(case_file, "ab") as handle:
        handle.write(b"TAIL")  # 4 bytes the loop cannot show: they would never be written
    before = sha256(case_file)
    with attached(str(case_file)) as device:
        wipe_refused(device, "shows only 4194304 of the 4194308 bytes of its backing file")
    assert sha256(case_file) == before


# G4 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["/var/tmp", "/etc"])
def test_a_loop_over_a_file_on_the_system_disk_is_refused(state_dir: Path, where: str) -> None:
    # /var/tmp: an image on the station's own filesystem; /etc: the harmful case (a station file)
    if os.stat(where).st_dev == os.stat("/dev/shm").st_dev:
        pytest.skip(f"{where} is on the same filesystem as /dev/shm here")
    victim = Path(where) / f"wipe-agent-test-{os.getpid()}-victim.img"
    victim.write_bytes(b"STATION FILE " * 80000)
    victim.write_bytes(victim.read_bytes()[:1 << 20])
    try:
        before = sha256(victim)
        with attached(str(victim)) as device:
            wipe_refused(device, "its backing file lives on", "wiping it would overwrite a station file")
        assert sha256(victim) == before
    finally:
        victim.unlink(missing_ok=True)


# G8 ------------------------------------------------------------------------------------------------

def test_a_disk_mounted_only_in_another_mount_namespace_is_refused_naming_the_mount(
        partitioned: tuple[str, Path], state_dir: Path, tmp_path: Path) -> None:
    device_path, partition = partitioned
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(partition)],
                   check=True, capture_output=True)
    mount_point = tmp_path / "container-mount"
    mount_point.mkdir()
    # a container: the mount exists only in its namespace, frozen so the filesystem writes nothing meanwhile
    script = (f"mount {partition} {mount_point} && echo data > {mount_point}/f && fsfreeze -f {mount_point} "
              f"&& echo mounted && read line; fsfreeze -u {mount_point}")
    container = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert container.stdout is not None
        first = container.stdout.readline().strip()
        if not first:
            _, error = container.communicate("\n", timeout=30)
            if "propagation" in error:  # a chroot whose root is not a mount point cannot host the container
                pytest.skip(f"cannot make a private mount namespace here: {error.strip()}")
        assert first == "mounted"
        assert not os.path.ismount(mount_point)  # not in this namespace
        before = sha256(partition)
        expected = "mounted in another mount namespace (pid "
        reasons = Guard().assess(device_path).reasons
        assert any(expected in reason and f"on {mount_point})" in reason for reason in reasons), reasons
        wipe_refused(device_path, expected, f"on {mount_point})")
        assert sha256(partition) == before
    finally:
        if container.returncode is None:
            container.communicate("\n", timeout=30)


# B3 (display) --------------------------------------------------------------------------------------

def test_a_pass_stopped_midway_is_shown_as_not_completed_with_the_bytes_it_wrote(
        state_dir: Path, tmp_path: Path) -> None:
    # a sparse 16 MiB image on a 2 MiB tmpfs: the loop's writes fail once the filesystem is full (not a medium
    # error), so the overwrite pass stops part-way (the same stop as a setro or a removal mid-pass)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    device = None
    try:
        image = small / "sparse.img"
        with open(image, "wb") as handle:
            handle.truncate(16 << 20)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                                text=True).stdout.strip()
        result = run_cli("wipe", device, "--profile", "nist-clear-overwrite", "--yes", "--json")
        data = json.loads(result.stdout)
        assert result.returncode == 1 and data["outcome"] == "failed" and data["route"] == "hold", data
        assert data["level"] is None, data  # the planned level was not reached
        assert 0 < data["bytes_written"] < 16 << 20, data
        shown = run_cli("job", data["job_id"])
        assert shown.returncode == 0, shown.stderr
        assert "✓" not in shown.stdout and "chosen: ✗ overwrite" in shown.stdout, shown.stdout
        assert "not completed: job failed" in shown.stdout and "of 16.8 MB written" in shown.stdout, shown.stdout
        assert json.loads(run_cli("job", data["job_id"], "--json").stdout)["bytes_written"] == data["bytes_written"]
    finally:
        if device is not None:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        subprocess.run(["umount", str(small)], check=False, capture_output=True)


# NEW-R2-5 ------------------------------------------------------------------------------------------

def test_a_loop_whose_backing_file_cannot_be_watched_is_refused_untouched(case_file: Path, state_dir: Path) -> None:
    # the image is unlinked after losetup: the loop still writes it, but no path leads to the inode, so
    # neither the fanotify watch nor the settled-inode check could see a writer beside the loop
    with attached(str(case_file)) as device:
        case_file.unlink()
        before = sha256(device)  # the inode, read through the loop: nothing else leads to it now
        data = wipe_refused(device, f"the backing file of {Path(device).name} cannot be watched during the job",
                            "no path in this mount namespace leads to it")
        assert "a file-backed loop is not wiped without that watch" in str(data["reason"])
        assert sha256(device) == before


def test_a_watch_refused_by_a_system_call_filter_says_so(loop_factory: Callable[..., LoopDevice],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # the seam is libc's fanotify_init: under SystemCallFilter=@system-service alone it fails with EPERM
    from agent.discovery import backing_watch

    def refused(_flags: int, _event_flags: int) -> int:
        ctypes.set_errno(errno.EPERM)
        return -1

    assert backing_watch._functions is not None
    monkeypatch.setattr(backing_watch, "_functions", (refused, backing_watch._functions[1]))
    device = loop_factory(1 << 20)
    status = loops.loop_status(Path(device.path).name)
    assert status is not None
    with pytest.raises(backing_watch.WatchUnavailable, match="fanotify_init failed: Operation not permitted "
                                                             r"\(refused by a system call filter"):
        backing_watch.BackingWatch.start(status.name, status.backing)
