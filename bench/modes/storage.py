"""Storage (mode = "storage"): disk used per additional instance, and the cost of the first
write to a large file of the image (copy-up in overlayfs, copy-on-write in qcow2) against a
second write to it.

Per repetition and runtime, one instance: the host reads the instance's own disk right after
READY (container: du of the overlay2 UpperDir from `docker inspect`; VM: actual-size of its
qcow2 overlay from `qemu-img info`), the guest then writes one 4 KiB block into the largest
file of the image twice, timing each write with its own clock, and the host reads the disk
again once the instance is gone. Once per run, each VM runtime also copies the base disk in
full, the contrast to an overlay. Native instances chroot into the shared root itself
(read-only): their disk is what they own, the scratch folder bound on /var/tmp (du), and
the write test is not run there (it would change the image for everyone).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.collect.host import du_bytes, run_text
from bench.console import say
from bench.errors import RuntimeFailure
from bench.measure import Value, attempt
from bench.modes.base import Mode
from bench.runtimes import Limits
from bench.spec import Cell, Step
from bench.workloads import NO_NEEDS, Needs

CELL = "storage"
SETTLE_S = 3  # the guest waits this long after READY, while the host reads the idle disk
LARGE_FILE_BYTES = 10 * 2**20
BLOCK = 4096
NATIVE_LAYER = "none: the shared image root, read-only; a scratch folder of its own on /var/tmp"


# -- parsers (tested on captured output) ---------------------------------------------------


def parse_write_times(output: str) -> dict[str, float]:
    """'storage.first_write_ns 123' lines -> {'storage.first_write_s': 1.23e-7, ...}."""
    out = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("storage.") and parts[0].endswith("_ns") \
                and parts[1].lstrip("-").isdigit():
            out[parts[0].removesuffix("_ns") + "_s"] = int(parts[1]) / 1e9
    return out


def write_command(path: str, settle_s: float = SETTLE_S) -> str:
    """Two timed writes of one block into path, in place (notrunc) and synced (fsync), so
    the copy-up or the qcow2 cluster allocation happens inside the timed span."""
    write = (f'dd if=/dev/zero of="$f" bs={BLOCK} count=1 conv=notrunc,fsync 2>/dev/null')
    return (f"sleep {settle_s}; f='{path}'; t0=$(date +%s%N); {write} || exit 3; "
            f"t1=$(date +%s%N); {write} || exit 4; t2=$(date +%s%N); "
            'echo "storage.first_write_ns $((t1 - t0))"; '
            'echo "storage.second_write_ns $((t2 - t1))"; sync')


def largest_file(root: Path, prefer: str = "usr") -> tuple[str, int]:
    """The largest regular file of the image (under /usr when one there is large enough):
    the guest path and its size. Chosen at run time, since the image recipe changes."""
    def scan(top: Path):
        best = ("", 0)
        for folder, _dirs, files in os.walk(top):
            for name in files:
                full = os.path.join(folder, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if st.st_size > best[1] and os.path.isfile(full) and not os.path.islink(full):
                    best = (full, st.st_size)
        return best

    path, size = scan(root / prefer)
    if size < LARGE_FILE_BYTES:
        path, size = scan(root)
    if size < LARGE_FILE_BYTES:
        raise RuntimeFailure(f"no file of {LARGE_FILE_BYTES // 2**20} MiB or more in {root}")
    return "/" + os.path.relpath(path, root), size


# -- the driver ----------------------------------------------------------------------------


class Storage(Mode):
    name = "storage"

    def run(self, session) -> None:
        scenario, image = session.scenario, session.image
        guest_path, file_bytes = largest_file(image.root)
        usable = session.usable()
        session.announce(f"first/second write into {guest_path} ({file_bytes / 2**20:.1f} MiB)")
        tags = {"write_file": guest_path, "write_file_bytes": file_bytes,
                "image_disk_bytes": du_bytes(image.disk)}
        for spec, runtime in usable:
            if runtime.traits.isolation == "vm":
                full_copy(session, spec, {**tags, **runtime.tags()})
        for rep in range(scenario.reps):
            for spec, runtime in usable:
                step = Step(Cell.of_mode(CELL, spec), rep, False)
                instance_tags, outcome = one_instance(session, runtime, guest_path, dict(tags))
                session.keep(step, instance_tags, outcome)
                shown = {v.metric: v.value for v in outcome.values}
                errors = [v.error for v in outcome.values if v.error]
                say(f"  {spec.name} rep {rep}: " + (
                    f"failed: {errors[0][:200]}" if errors and
                    shown.get("storage.instance_disk_bytes") is None else _summary(shown)))


def _summary(shown: dict) -> str:
    parts = []
    if (disk := shown.get("storage.instance_disk_bytes")) is not None:
        parts.append(f"disk {disk / 2**10:.0f} KiB")
    if (after := shown.get("storage.instance_disk_after_write_bytes")) is not None:
        parts.append(f"after writes {after / 2**10:.0f} KiB")
    for key in ("storage.first_write_s", "storage.second_write_s"):
        if shown.get(key) is not None:
            parts.append(f"{key.split('.')[1]} {shown[key] * 1e3:.1f} ms")
    return ", ".join(parts)


def full_copy(session, spec, tags: dict) -> None:
    """The contrast to an overlay: a VM given its own full copy of the base disk."""
    target = session.workdir / "full-copy.raw"
    token = session.cleanup.add("full disk copy", lambda: target.unlink(missing_ok=True))
    step = Step(Cell.of_mode(CELL, spec), 0, False)
    tags = {**tags, "layer": "full copy of the base disk"}
    try:
        t0 = time.monotonic()
        # cp as a user would make a VM its own disk: holes of the sparse base stay holes
        run_text(["cp", "--sparse=auto", str(session.image.disk), str(target)], timeout=600)
        os.sync()
        seconds = time.monotonic() - t0
        session.save(step, tags, [Value("storage.full_copy_bytes", du_bytes(target), "bytes"),
                                  Value("storage.full_copy_s", seconds, "s")])
    except (OSError, subprocess.SubprocessError) as exc:
        session.save(step, tags, [Value("storage.full_copy_bytes", None, "bytes",
                                        f"copy failed: {exc}")])
    finally:
        session.cleanup.release(token)


def one_instance(session, runtime, guest_path: str, tags: dict):
    """One instance's disk before and after its two writes: (its tags, its outcome)."""
    scenario = session.scenario
    layer = runtime.traits.disk_layer
    tags.update(runtime.tags(), layer=layer or NATIVE_LAYER)
    # On the shared image root (read-only) the instance idles, and what it owns on disk is
    # its scratch folder, bound where others have a layer.
    command, needs = ((f"sleep {SETTLE_S}", Needs(scratch=True)) if layer is None
                      else (write_command(guest_path), NO_NEEDS))
    with attempt("storage.first_write_s", "s") as outcome:
        with runtime.running(command, Limits(scenario.cpus, scenario.memory_mib),
                             session.instance_name(), needs=needs) as inst:
            tags.update(inst.tags)
            ready = inst.wait_ready(scenario.timeout_s)
            deadline = inst.t_launch + scenario.timeout_s
            outcome.add("startup.ready_s", ready.t - inst.t_launch, "s")
            outcome.add("storage.instance_disk_bytes", runtime.instance_disk(inst), "bytes")
            done = inst.lines.wait_for("DONE", deadline)
            inst.wait_gone(max(1.0, deadline - time.monotonic()))
            code = done.exit_code
            output = inst.lines.output_between(ready, done)
            if code != 0:
                raise RuntimeFailure(f"write test exit code {code}: {output[-300:]}")
            if layer is None:
                why = "not run: a native instance would write into the shared image root itself"
                outcome.not_applicable("storage.first_write_s", "s", why)
                outcome.not_applicable("storage.second_write_s", "s", why)
                return tags, outcome
            times = parse_write_times(output)
            for metric in ("storage.first_write_s", "storage.second_write_s"):
                outcome.add(metric, times.get(metric), "s",
                            None if metric in times else f"no {metric} in: {output[-200:]}")
            outcome.add("storage.instance_disk_after_write_bytes", runtime.instance_disk(inst),
                        "bytes")
    return tags, outcome
