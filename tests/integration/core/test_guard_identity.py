"""The guard decides by kernel identity, and a job is bound to one medium instance (issue 12).

Every case runs on real loop devices: stacked loops whose nodes were deleted or live in another
mount namespace, two loops over one image, a thread with its own descriptor table, a process whose
main thread exited, a loop over an active swap file, a loop grown under a running job, another
image attached at the same loop number while ``wipe`` waits at its prompt. Each refusal is proven
with a checksum of the protected bytes taken before and after, and an exit status of 2.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pty
import select
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.discovery import udev
from agent.discovery.guard import Authorisation, Guard
from agent.errors import DriveProtected
from agent.jobs.runner import JobRequest, JobRunner
from agent.policy.profiles import load_profile
from agent.store.registry import JobRow, Registry
from tests.conftest import WIPE_AGENT, LoopDevice, run_cli

pytestmark = pytest.mark.root

PROFILE = "nist-clear-overwrite"


def sha256(path: Path | str) -> str:
    """Checksum of a file or of a whole block device, read independently of the agent."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        if stat.S_ISBLK(os.fstat(handle.fileno()).st_mode):
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wipe_refused(device_path: str, *expected: str) -> dict[str, object]:
    """``wipe --yes`` exits 2 with every ``expected`` text in its reason, and nothing reached ``running``."""
    result = run_cli("wipe", device_path, "--profile", PROFILE, "--yes", "--json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    assert data["outcome"] == "refused", data
    for text in expected:
        assert text in str(data["reason"]), data["reason"]
    assert data["bytes_written"] == 0 and data["method"] is None
    return data


def private_node(directory: Path, device: str, label: str) -> Path:
    """A block node of ``device``'s number in ``directory`` (for our own use after its /dev node is gone)."""
    node = directory / label
    os.mknod(node, stat.S_IFBLK | 0o600, os.stat(device).st_rdev)
    return node


def attach(backing: Path | str) -> str:
    return subprocess.run(["losetup", "--find", "--show", str(backing)], check=True, capture_output=True,
                          text=True).stdout.strip()


class DeletedNode:
    """Removes a loop's /dev node for a test and puts it back after (devtmpfs does not re-create it)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.number = os.stat(device).st_rdev

    def __enter__(self) -> DeletedNode:
        os.unlink(self.device)
        return self

    def __exit__(self, *args: object) -> None:
        if not os.path.exists(self.device):
            os.mknod(self.device, stat.S_IFBLK | 0o660, self.number)


def mount(node: Path | str, mount_point: Path) -> None:
    """A fresh ext4 with a file on it; no lazy initialisation, which writes in the background after mount."""
    mount_point.mkdir(exist_ok=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(node)], check=True,
                   capture_output=True)
    subprocess.run(["mount", str(node), str(mount_point)], check=True, capture_output=True)
    (mount_point / "evidence.txt").write_text("must survive")
    subprocess.run(["sync"], check=True)


@contextmanager
def frozen(mount_point: Path) -> Iterator[None]:
    """``fsfreeze``: a mounted filesystem writes nothing (journal commits, atime) while the checksums are taken."""
    subprocess.run(["fsfreeze", "-f", str(mount_point)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["fsfreeze", "-u", str(mount_point)], check=False, capture_output=True)


def umount(mount_point: Path) -> None:
    subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)


# stacked loops whose nodes were deleted ----------------------------------------------------------

def test_lower_under_a_mounted_upper_whose_nodes_were_deleted_is_refused(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    lower = loop_factory(32 << 20, fill=b"\0")
    # the upper loop is given a private node of the lower, deleted at once: backing_file ends "(deleted)"
    given = private_node(tmp_path, lower.path, "lower-node")
    upper = attach(given)
    given.unlink()
    upper_node = private_node(tmp_path, upper, "upper-node")
    mount_point = tmp_path / "mnt"
    try:
        with DeletedNode(upper):
            assert Path(f"/sys/block/{Path(upper).name}/loop/backing_file").read_text().strip().endswith("(deleted)")
            mount(upper_node, mount_point)
            try:
                with frozen(mount_point):
                    before = sha256(lower.backing)
                    wipe_refused(lower.path, f"backs loop device {Path(upper).name}")
                    assert sha256(lower.backing) == before
                assert (mount_point / "evidence.txt").read_text() == "must survive"
            finally:
                umount(mount_point)
    finally:
        subprocess.run(["losetup", "-d", upper], check=False, capture_output=True)


def test_upper_over_a_mounted_lower_is_refused_naming_the_mount(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    lower = loop_factory(32 << 20, fill=b"\0")
    mount_point = tmp_path / "mnt"
    mount(lower.path, mount_point)
    given = private_node(tmp_path, lower.path, "lower-node")
    upper = attach(given)
    given.unlink()
    upper_node = private_node(tmp_path, upper, "upper-node")
    try:
        with DeletedNode(upper), frozen(mount_point):
            before = sha256(lower.backing)
            wipe_refused(str(upper_node), "loop device over the block device", f"{Path(lower.path).name}: holds a "
                         "mounted filesystem")
            assert sha256(lower.backing) == before
    finally:
        subprocess.run(["losetup", "-d", upper], check=False, capture_output=True)
        umount(mount_point)


def test_a_loop_over_a_loop_over_the_target_is_named_through_the_middle_one(
        loop_factory: Callable[..., LoopDevice], tmp_path: Path) -> None:
    bottom = loop_factory(16 << 20)
    middle = attach(bottom.path)
    top = attach(middle)
    try:
        reasons = Guard().assess(bottom.path).reasons
        assert any(f"backs loop device {Path(middle).name}" in reason for reason in reasons), reasons
        assert any(f"backs loop device {Path(top).name}" in reason and f"through {Path(middle).name}" in reason
                   for reason in reasons), reasons
        top_reasons = " ".join(Guard().assess(top).reasons)
        assert f"over the block device {Path(middle).name}" in top_reasons
        assert f"stacked (through {Path(middle).name}) over the block device {Path(bottom.path).name}" in top_reasons
    finally:
        subprocess.run(["losetup", "-d", top], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", middle], check=False, capture_output=True)


def test_the_filesystem_holding_another_loops_image_is_refused_even_lazily_unmounted(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    # an image file on the target's filesystem backs a loop; ``umount -l`` hides the mount from mountinfo
    disk = loop_factory(32 << 20, fill=b"\0")
    mount_point = tmp_path / "mnt"
    mount(disk.path, mount_point)
    image = mount_point / "inner.img"
    image.write_bytes(os.urandom(4 << 20))
    inner = attach(image)
    subprocess.run(["umount", "-l", str(mount_point)], check=True)
    try:
        before = sha256(disk.backing)
        wipe_refused(disk.path, f"holds the filesystem of the backing file of loop device {Path(inner).name}")
        assert sha256(disk.backing) == before
    finally:
        subprocess.run(["losetup", "-d", inner], check=False, capture_output=True)


# another mount namespace -------------------------------------------------------------------------

NAMESPACE_SCRIPT = r"""
set -e
mount -t tmpfs none /dev
mknod /dev/loop-control c 10 237
mknod /dev/decoy b {major} {minor}
device=$(losetup -f)
number=${{device#/dev/loop}}
mknod "$device" b 7 "$number"
losetup "$device" /dev/decoy
echo "$device"
"""


def test_a_loop_made_in_another_mount_namespace_is_seen(loop_factory: Callable[..., LoopDevice],
                                                        state_dir: Path) -> None:
    lower = loop_factory(16 << 20)
    number = os.stat(lower.path).st_rdev
    script = NAMESPACE_SCRIPT.format(major=os.major(number), minor=os.minor(number))
    made = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a loop device in a private mount namespace here: {made.stderr.strip()}")
    upper_name = Path(made.stdout.strip()).name
    try:
        # the path the kernel shows is the namespace's: it does not exist here
        backing = Path(f"/sys/block/{upper_name}/loop/backing_file").read_text().strip()
        assert backing.endswith("/decoy") and not (os.path.exists(backing) and os.stat(backing).st_rdev == number)
        before = sha256(lower.backing)
        wipe_refused(lower.path, f"backs loop device {upper_name}")
        assert sha256(lower.backing) == before
    finally:
        subprocess.run(["losetup", "-d", f"/dev/{upper_name}"], check=False, capture_output=True)


# two loops over one image ------------------------------------------------------------------------

def test_two_loops_over_one_image_the_other_mounted_is_refused(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    first = loop_factory(32 << 20, fill=b"\0")
    second = attach(first.backing)
    mount_point = tmp_path / "mnt"
    try:
        mount(second, mount_point)
        try:
            with frozen(mount_point):
                before = sha256(first.backing)
                wipe_refused(first.path, f"shares its backing file with loop device {Path(second).name}",
                             "holds a mounted filesystem")
                assert sha256(first.backing) == before
            assert (mount_point / "evidence.txt").read_text() == "must survive"
        finally:
            umount(mount_point)
        # the simple rule: any other loop over the same inode refuses, mounted or not
        reasons = Guard().assess(first.path).reasons
        assert any(f"shares its backing file with loop device {Path(second).name}" in r for r in reasons), reasons
    finally:
        subprocess.run(["losetup", "-d", second], check=False, capture_output=True)


# holders the main thread's descriptor table does not show ----------------------------------------

THREAD_HOLDER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *path;
static const char *mode;

static void *hold(void *unused) {
    (void)unused;
    if (strcmp(mode, "unshare") == 0 && unshare(CLONE_FILES) != 0) { perror("unshare"); _exit(3); }
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror("open"); _exit(4); }
    if (strcmp(mode, "mmap") == 0) {
        if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED) { perror("mmap"); _exit(5); }
        close(fd);
    }
    printf("held\n");
    fflush(stdout);
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t thread;
    if (argc != 3) return 2;
    path = argv[1];
    mode = argv[2];
    if (pthread_create(&thread, NULL, hold, NULL) != 0) return 6;
    if (strcmp(mode, "unshare") == 0) pthread_join(thread, NULL);
    pthread_exit(NULL);  /* "exited" and "mmap": the main thread is gone, the other still holds the disk */
}
"""


@pytest.fixture(scope="module")
def thread_holder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path("/usr/bin/cc").exists():
        pytest.skip("no C compiler (cc) to build the thread-holder helper")
    directory = tmp_path_factory.mktemp("thread-holder")
    source = directory / "holder.c"
    source.write_text(THREAD_HOLDER_C)
    binary = directory / "holder"
    subprocess.run(["cc", "-O1", "-pthread", "-o", str(binary), str(source)], check=True, capture_output=True)
    return binary


@pytest.fixture
def hold_in_thread(thread_holder: Path) -> Iterator[Callable[[str, str], int]]:
    started: list[subprocess.Popen[str]] = []

    def start(path: str, mode: str) -> int:
        process = subprocess.Popen([str(thread_holder), path, mode], stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        if mode != "unshare":  # readiness, not timing: the main thread is a zombie once it has exited
            for _ in range(1000):
                if _leader_exited(process.pid):
                    break
                select.select([], [], [], 0.01)
            assert _leader_exited(process.pid)
        return process.pid

    yield start
    for process in started:
        process.kill()
        process.wait()
        assert process.stdout is not None
        process.stdout.close()


def _leader_exited(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return any(line.startswith("State:") and "Z" in line for line in status.splitlines())


def _main_table_has(pid: int, device: str) -> bool:
    number = os.stat(device).st_rdev
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        try:
            if os.stat(f"/proc/{pid}/fd/{name}").st_rdev == number:
                return True
        except OSError:
            continue
    return False


def test_a_thread_with_its_own_descriptor_table_is_a_holder(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, hold_in_thread: Callable[[str, str], int]) -> None:
    device = loop_factory(8 << 20)
    pid = hold_in_thread(device.path, "unshare")
    assert not _main_table_has(pid, device.path)  # the case is real: /proc/PID/fd alone misses it
    before = sha256(device.backing)
    wipe_refused(device.path, f"busy: open by pid {pid} (holder)")
    assert sha256(device.backing) == before


def test_a_process_whose_main_thread_exited_is_a_holder(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, hold_in_thread: Callable[[str, str], int]) -> None:
    device = loop_factory(8 << 20)
    pid = hold_in_thread(device.path, "exited")
    assert not _main_table_has(pid, device.path)
    before = sha256(device.backing)
    wipe_refused(device.path, f"busy: open by pid {pid} (holder)")
    assert sha256(device.backing) == before


def test_an_mmap_held_by_a_thread_after_the_main_thread_exited_is_busy(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, hold_in_thread: Callable[[str, str], int]) -> None:
    device = loop_factory(8 << 20, direct_io=False)
    pid = hold_in_thread(device.path, "mmap")
    assert Path(f"/proc/{pid}/maps").read_bytes() == b""  # the main thread's view is empty
    before = sha256(device.backing)
    with pytest.raises(DriveProtected, match=f"mapped into memory by pid {pid}"):
        Guard().acquire(device.path, Authorisation(device.path, "tester")).close()
    wipe_refused(device.path, f"busy: mapped into memory by pid {pid} (holder)")
    assert sha256(device.backing) == before


# a loop over an active swap file -----------------------------------------------------------------

def test_a_loop_over_an_active_swap_file_is_refused_not_routed_to_destroy(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    # swap files need a block filesystem (tmpfs has no swap support): the test's directory is on one
    swap_file = tmp_path / "swapfile"
    with open(swap_file, "wb") as handle:
        handle.write(bytes(8 << 20))
    swap_file.chmod(0o600)
    device = attach(swap_file)  # attached first, read-write: the loop then writes into the swap area
    try:
        subprocess.run(["mkswap", str(swap_file)], check=True, capture_output=True)
        swapon = subprocess.run(["swapon", str(swap_file)], capture_output=True, text=True)
        if swapon.returncode != 0:
            pytest.skip(f"swapon of a file is not permitted here: {swapon.stderr.strip()}")
        try:
            header = swap_file.read_bytes()[:4096]
            assert header[4086:] == b"SWAPSPACE2"
            data = wipe_refused(device, "its backing file is an active swap file")
            assert data["route"] != "destroy"
            # no whole-file checksum: the kernel may page out into the area; its header must be intact
            assert swap_file.read_bytes()[:4096] == header
        finally:
            subprocess.run(["swapoff", str(swap_file)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


# a medium that changes under the job -------------------------------------------------------------

def _grow(loop: LoopDevice) -> None:
    with open(loop.backing, "r+b") as handle:
        handle.truncate(loop.size * 2)
    subprocess.run(["losetup", "-c", loop.path], check=True, capture_output=True)


@pytest.mark.parametrize("phase", ["overwrite", "verify"])
def test_a_loop_grown_during_the_job_fails_and_is_held(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                                       phase: str) -> None:
    device = loop_factory(8 << 20)
    size = device.size
    registry = Registry(state_dir).open()
    runner = JobRunner(registry, Guard(), udev.identify)
    grown: list[str] = []

    def progress(job_id: str, current: str, done: int, total: int) -> None:
        # the test seam: grow at the end of the last write, or as verification starts
        if current == phase and not grown and (phase == "verify" or done == total):
            _grow(device)
            grown.append(current)

    request = JobRequest(device.path, load_profile(PROFILE), Authorisation(device.path, "tester"))
    job = runner.run(request, progress)
    registry.close()
    assert grown == [phase]
    assert job.state == "failed" and job.route == "hold" and job.error_code == "medium_changed", (job.state,
                                                                                                  job.reason)
    when = "after the last write" if phase == "overwrite" else "after verification"
    assert f"size changed from {size} to {2 * size} bytes during the job, {when} (losetup -c?)" in (job.reason or "")
    # nothing certifies it: only sanitised jobs get a certificate
    assert job.certificate_path is None


LOOP_CTL_ADD, LOOP_CTL_REMOVE = 0x4C80, 0x4C81


@pytest.fixture
def private_loop() -> Iterator[str]:
    """An unbound loop device at a high index of its own (LOOP_CTL_ADD), removed afterwards.

    ``losetup -f`` elsewhere on the machine takes the lowest free loop: between a detach and a
    re-attach it would take a freed low number, not this one.
    """
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    index = -1
    try:
        for candidate in range(200 + os.getpid() % 300, 1000):
            try:
                fcntl.ioctl(control, LOOP_CTL_ADD, candidate)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    continue
                pytest.skip(f"cannot add a loop device: {exc.strerror}")
            index = candidate
            break
        if index < 0:
            pytest.skip("no free loop index to add")
        path = f"/dev/loop{index}"
        if not os.path.exists(path):
            os.mknod(path, stat.S_IFBLK | 0o660, os.makedev(7, index))
        yield path
    finally:
        if index >= 0:
            subprocess.run(["losetup", "-d", f"/dev/loop{index}"], check=False, capture_output=True)
            try:
                fcntl.ioctl(control, LOOP_CTL_REMOVE, index)
            except OSError:
                pass  # still held by someone: the kernel removes nothing that is open
        os.close(control)


def _attach_at(path: str, backing: Path) -> None:
    subprocess.run(["losetup", path, str(backing)], check=True, capture_output=True)


def test_a_medium_swapped_at_the_prompt_is_refused(state_dir: Path, tmp_path: Path, private_loop: str) -> None:
    image = Path("/dev/shm") / f"wipe-agent-test-{os.getpid()}-{tmp_path.name}-prompt.img"
    image.write_bytes(os.urandom(8 << 20))
    _attach_at(private_loop, image)
    first = LoopDevice(image, private_loop)
    # the second image will take the first's path (so even its path-based "serial" is the same)
    second = Path("/dev/shm") / f"{first.backing.name}.second"
    second.write_bytes(os.urandom(8 << 20))
    moved = first.backing.with_name(first.backing.name + ".first")
    before_second = sha256(second)
    master, slave = pty.openpty()
    process = subprocess.Popen([*WIPE_AGENT, "wipe", first.path, "--profile", PROFILE], stdin=slave,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ})
    os.close(slave)
    try:
        assert process.stdout is not None
        seen = ""
        while "Proceed?" not in seen:
            character = process.stdout.read(1)
            assert character, f"wipe ended before the prompt: {seen}"
            seen += character
        # while wipe waits: detach, put another image at the same path, attach it at the same number
        subprocess.run(["losetup", "-d", first.path], check=True)
        first.backing.rename(moved)
        second.rename(first.backing)
        _attach_at(first.path, first.backing)
        os.write(master, b"y\n")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(master)
        if process.returncode is None:
            process.kill()
            process.communicate()
        moved.unlink(missing_ok=True)
        second.unlink(missing_ok=True)
    try:
        assert process.returncode == 2, (out, err)
        assert "Traceback" not in err
        assert "diskseq changed" in out and f"another medium is at {first.path}" in out, out
        assert "REFUSED" in out and "route     hold" in out, out
        assert sha256(first.backing) == before_second  # the second image: untouched
    finally:
        subprocess.run(["losetup", "-d", first.path], check=False, capture_output=True)
        image.unlink(missing_ok=True)


# open errors are not medium errors ---------------------------------------------------------------

@pytest.mark.parametrize("number", [errno.EPERM, errno.ENOMEM, errno.ETXTBSY, errno.EINVAL])
def test_an_unrecognised_open_error_holds_the_drive(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    device = loop_factory(8 << 20)
    before = sha256(device.backing)
    real_open = os.open

    def failing_open(path: str, flags: int, *args: int, **kwargs: int) -> int:
        # the job's exclusive write open fails as a device cgroup (EPERM) or the allocator (ENOMEM) would
        if path == device.path and flags & os.O_EXCL:
            raise OSError(number, os.strerror(number), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr("agent.transport.block.os.open", failing_open)
    registry = Registry(state_dir).open()
    job = JobRunner(registry, Guard(), udev.identify).run(
        JobRequest(device.path, load_profile(PROFILE), Authorisation(device.path, "tester")))
    registry.close()
    assert job.state == "failed" and job.route == "hold", (job.state, job.route, job.reason)
    assert job.error_code == "drive_error"
    assert errno.errorcode[number] in (job.reason or "") and "not a medium error" in (job.reason or "")
    assert sha256(device.backing) == before


def test_capture_sees_a_new_diskseq_after_reattach(tmp_path: Path, private_loop: str) -> None:
    # the kernel fact the binding rests on (5.15+): every attach is a new medium instance
    from agent.discovery.medium import capture, changes

    image = tmp_path / "reattach.img"
    image.write_bytes(bytes(8 << 20))
    _attach_at(private_loop, image)
    device = LoopDevice(image, private_loop)
    before = capture(device.path)
    if before.diskseq is None:
        pytest.skip("this kernel has no diskseq (before 5.15)")
    subprocess.run(["losetup", "-d", device.path], check=True)
    _attach_at(device.path, device.backing)
    after = capture(device.path)
    assert after.diskseq is not None and after.diskseq > before.diskseq
    assert after.loop == before.loop  # same file, same inode: only diskseq tells them apart
    assert changes(before, after, "now") == [f"diskseq changed {before.diskseq} → {after.diskseq} now: another "
                                              f"medium is at {device.path}"]


# a guard's own look at a loop (O_RDONLY|O_NONBLOCK) is waited for like a udev probe --------------

PEEKER = ("import os, sys\n"
          "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)\n"
          "print('held', flush=True)\n"
          "sys.stdin.read()\n")


def _peek(path: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", PEEKER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def _release(process: subprocess.Popen[str]) -> None:
    if process.returncode is None:
        process.communicate(timeout=30)


def test_a_look_that_lets_go_is_waited_for_and_one_that_stays_is_refused(
        loop_factory: Callable[..., LoopDevice]) -> None:
    device = loop_factory(8 << 20)
    passing = _peek(device.path)
    try:
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            _release(passing)  # another job's guard closes its loop-status descriptor

        assert Guard(probe_wait=60, sleep=sleep).assess(device.path).reasons == ()
        assert len(waits) == 1
    finally:
        _release(passing)
    staying = _peek(device.path)
    try:
        clock = iter(range(1000))
        guard = Guard(probe_wait=3, sleep=lambda _seconds: None, clock=lambda: float(next(clock)))
        command = Path(f"/proc/{staying.pid}/comm").read_text().strip()
        assert guard.assess(device.path).reasons == (
            f"busy: open by pid {staying.pid} ({command}), a read-only non-blocking look (O_RDONLY|O_NONBLOCK) "
            "still open after 3 s",)
    finally:
        _release(staying)


# attacks G1/G1b: backing paths that lie (trailing blanks, a real file named "... (deleted)") -----

@pytest.mark.parametrize("node_name", ["node-of-target ", "node-of-target\n", "node-of-target\t", "decoy"])
def test_a_backing_path_that_lies_hides_nothing_in_either_direction(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path, node_name: str) -> None:
    lower = loop_factory(32 << 20, fill=b"\0")
    node = private_node(tmp_path, lower.path, node_name)
    upper = attach(node)
    if node_name == "decoy":
        # the node goes, and a regular file takes the name the kernel now shows ("… (deleted)")
        node.unlink()
        (tmp_path / "decoy (deleted)").write_bytes(b"not a block device")
    mount_point = tmp_path / "mnt"
    try:
        mount(upper, mount_point)
        try:
            with frozen(mount_point):
                before = sha256(lower.backing)
                wipe_refused(lower.path, f"backs loop device {Path(upper).name}")
                assert sha256(lower.backing) == before
        finally:
            umount(mount_point)
        mount(lower.path, mount_point)  # the reverse: the lower now holds the mounted filesystem
        try:
            with frozen(mount_point):
                before = sha256(lower.backing)
                wipe_refused(upper, "loop device over the block device", "holds a mounted filesystem")
                assert sha256(lower.backing) == before
        finally:
            umount(mount_point)
    finally:
        subprocess.run(["losetup", "-d", upper], check=False, capture_output=True)


# attacks G2/G3: someone else writes to the disk during the job ------------------------------------

SECRET = b"OFFICIAL-SENSITIVE".ljust(4096, b"#")


def _run_with(device: LoopDevice, state_dir: Path, during: Callable[[], None], when: str = "overwrite") -> JobRow:
    """Run a real overwrite job in this process; ``during`` runs once, halfway through the phase ``when``."""
    registry = Registry(state_dir).open()
    runner = JobRunner(registry, Guard(), udev.identify)
    done_once: list[bool] = []

    def progress(job_id: str, phase: str, done: int, total: int) -> None:
        if phase == when and not done_once and done >= total // 2:
            done_once.append(True)
            during()

    job = runner.run(JobRequest(device.path, load_profile(PROFILE), Authorisation(device.path, "tester")), progress)
    registry.close()
    assert done_once == [True]
    return job


@pytest.mark.parametrize("when", ["overwrite", "verify"])
def test_a_write_by_another_process_during_the_job_fails_it_and_holds_the_drive(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, when: str) -> None:
    device = loop_factory(16 << 20)
    name = Path(device.path).name

    def writer() -> None:  # dd into a region the overwrite already went past: sampling would likely miss it
        subprocess.run(["dd", f"of={device.path}", "bs=4096", "count=1", "seek=256", "oflag=direct", "conv=notrunc",
                        "status=none"], input=SECRET, check=True)

    job = _run_with(device, state_dir, writer, when)
    assert job.state == "failed" and job.route == "hold", job.reason
    after = "after the last write" if when == "overwrite" else "after verification"
    assert f"another process wrote 8 sectors (4096 bytes) to {name} during the job, {after}" in (job.reason or "")
    assert job.certificate_path is None
    assert device.read(256 * 4096, 4096) == SECRET  # the write was real; the job did not certify over it


def test_a_loop_stacked_on_the_target_mid_job_fails_it_and_holds_not_destroys(
        loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(16 << 20)
    stacked: list[str] = []

    def stack() -> None:
        upper = attach(device.path)
        stacked.append(upper)
        subprocess.run(["dd", f"of={upper}", "bs=4096", "count=1", "oflag=direct", "conv=notrunc", "status=none"],
                       input=SECRET, check=True)

    try:
        job = _run_with(device, state_dir, stack)
    finally:
        for upper in stacked:
            subprocess.run(["losetup", "-d", upper], check=False, capture_output=True)
    reason = job.reason or ""
    assert job.state == "failed" and job.route == "hold", reason
    assert f"backs loop device {Path(stacked[0]).name}" in reason and "another process wrote" in reason, reason


# attack G4: the backing image of a loop target held by another process ---------------------------

# libc's mmap, not Python's (mmap.mmap keeps a dup of the descriptor): only the mapping is left
IMAGE_HOLDER = ("import ctypes, os, sys\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                "libc.mmap.restype = ctypes.c_void_p\n"
                "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,"
                " ctypes.c_long]\n"
                "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                "if sys.argv[2] == 'mmap':\n"
                "    assert libc.mmap(None, 4096, 1, 1, fd, 0) not in (None, ctypes.c_void_p(-1).value)\n"
                "    os.close(fd)\n"
                "print('held', flush=True)\n"
                "sys.stdin.read()\n")


@pytest.mark.parametrize("mode", ["open", "mmap"])
def test_a_loop_whose_backing_image_another_process_holds_is_refused(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, mode: str) -> None:
    device = loop_factory(8 << 20)
    name = Path(device.path).name
    holder = subprocess.Popen([sys.executable, "-c", IMAGE_HOLDER, str(device.backing), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = sha256(device.backing)
        how = "open by" if mode == "open" else "mapped into memory by"
        expected = f"busy: the backing file of {name} is {how} pid {holder.pid}"
        with pytest.raises(DriveProtected, match=expected):
            Guard().acquire(device.path, Authorisation(device.path, "tester")).close()
        if mode == "open":  # a listing (no memory maps read) names the descriptor too
            wipe_refused(device.path, expected)
        assert sha256(device.backing) == before
    finally:
        holder.communicate(timeout=30)


# attack G5: a character device reaching the same disk --------------------------------------------

def test_a_holder_of_a_character_alias_is_found(tmp_path: Path) -> None:
    from agent.discovery.openers import Watched, scan_openers

    # /dev/full stands in for /dev/sgN or /dev/ng0n1 (loop devices have no character alias): a private node
    alias = tmp_path / "alias"
    os.mknod(alias, stat.S_IFCHR | 0o600, os.stat("/dev/full").st_rdev)
    holder = subprocess.Popen([sys.executable, "-c", "import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                               "print('held', flush=True); sys.stdin.read()", str(alias)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        watched = Watched({}, {os.stat("/dev/full").st_rdev: "sg9"})
        found = [opener for opener in scan_openers(watched).openers if opener.pid == holder.pid]
        assert [(opener.node, opener.how) for opener in found] == [("sg9", "descriptor")]
    finally:
        holder.communicate(timeout=30)


@pytest.mark.parametrize("when", ["overwrite", "verify"])
def test_a_write_to_the_backing_file_itself_during_the_job_fails_it(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, when: str) -> None:
    # written beside the loop, not through it: the loop's write counter never moves (attack note)
    device = loop_factory(16 << 20)
    writers: list[int] = []

    def writer() -> None:
        process = subprocess.run(["dd", f"of={device.backing}", "bs=4096", "count=1", "seek=256", "conv=notrunc",
                                  "status=none"], input=SECRET, check=True)
        writers.append(process.returncode)

    job = _run_with(device, state_dir, writer, when)
    reason = job.reason or ""
    assert job.state == "failed" and job.route == "hold", reason
    # the opener is named by pid; its command only while it still runs (this dd has exited)
    assert f"opened the backing file of {Path(device.path).name} during the job" in reason, reason
    assert job.certificate_path is None


def test_a_swap_file_whose_path_only_another_namespace_knows_is_still_refused(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    # swapon through a bind mount in a private mount namespace: /proc/swaps then names a path that
    # does not lead to the file here, and only the inode itself (ETXTBSY on a write open) tells
    real, private = tmp_path / "real", tmp_path / "private"
    real.mkdir()
    private.mkdir()
    swap_file = real / "swapfile"
    with open(swap_file, "wb") as handle:
        handle.write(bytes(8 << 20))
    swap_file.chmod(0o600)
    device = attach(swap_file)
    try:
        subprocess.run(["mkswap", str(swap_file)], check=True, capture_output=True)
        swapon = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                 f"mount --bind {real} {private} && swapon {private}/swapfile"],
                                capture_output=True, text=True)
        if swapon.returncode != 0:
            pytest.skip(f"swapon of a file in a private mount namespace is not permitted here: {swapon.stderr.strip()}")
        try:
            listed = [line.split()[0] for line in Path("/proc/swaps").read_text().splitlines()[1:]]
            assert not any(os.path.exists(entry) and os.path.samefile(entry, swap_file) for entry in listed), listed
            data = wipe_refused(device, "is in use as swap (ETXTBSY)")
            assert data["route"] != "destroy"
        finally:
            for entry in [line.split()[0] for line in Path("/proc/swaps").read_text().splitlines()[1:]]:
                if entry.endswith("/swapfile") and str(tmp_path.name) in entry:
                    subprocess.run(["swapoff", entry], check=False, capture_output=True)
            subprocess.run(["swapoff", str(swap_file)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=False, capture_output=True)


def test_a_loop_whose_backing_filesystem_fills_up_is_held_not_destroyed(state_dir: Path, tmp_path: Path) -> None:
    # the loop's writes fail with EIO once its sparse image outgrows a 2 MiB tmpfs: no medium failed
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    device = None
    try:
        image = small / "sparse.img"
        with open(image, "wb") as handle:
            handle.truncate(16 << 20)
        device = attach(image)
        result = run_cli("wipe", device, "--profile", PROFILE, "--yes", "--json")
        data = json.loads(result.stdout)
        assert result.returncode == 1 and data["outcome"] == "failed", data
        assert data["route"] == "hold" and data["error_code"] == "drive_error", data
        assert "not a medium error" in data["reason"], data["reason"]
    finally:
        if device is not None:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        subprocess.run(["umount", str(small)], check=False, capture_output=True)


def test_a_bay_job_is_bound_to_the_medium_the_bay_saw_seated(state_dir: Path, tmp_path: Path,
                                                             private_loop: str) -> None:
    # the daemon queues a job for a seating (dev_t, diskseq); another image attached at the same loop
    # number before the worker starts is refused before its first write, and its bytes are unchanged
    from agent.daemon.worker import _seated_medium
    from agent.discovery.medium import capture

    first, second = tmp_path / "seated.img", tmp_path / "swapped-in.img"
    first.write_bytes(os.urandom(8 << 20))
    second.write_bytes(os.urandom(8 << 20))
    _attach_at(private_loop, first)
    seated = capture(private_loop)
    if seated.diskseq is None:
        pytest.skip("this kernel has no diskseq (before 5.15)")
    subprocess.run(["losetup", "-d", private_loop], check=True)
    _attach_at(private_loop, second)
    before = sha256(second)
    request = {"device_path": private_loop,
               "seating": {"dev_t": seated.device_number, "diskseq": seated.diskseq}}
    medium = _seated_medium(private_loop, request["seating"])
    assert medium is not None and medium.diskseq == seated.diskseq
    registry = Registry(state_dir).open()
    try:
        job = JobRunner(registry, Guard(), udev.identify).run(
            JobRequest(private_loop, load_profile(PROFILE), Authorisation(private_loop, "tester"), medium=medium))
    finally:
        registry.close()
    assert job.state == "refused" and job.route == "hold", (job.state, job.route, job.reason)
    assert "diskseq changed" in (job.reason or "") and f"another medium is at {private_loop}" in (job.reason or "")
    assert sha256(second) == before
    # without a seating (the CLI path) the worker binds nothing itself: the runner captures at its start
    assert _seated_medium(private_loop, None) is None
