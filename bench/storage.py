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

import json
import os
import subprocess
import time
from pathlib import Path

from bench.errors import RuntimeFailure
from bench.modes import du_bytes, record, run_text
from bench.runtimes import Limits
from bench.workloads import NO_NEEDS, Needs

CELL = "storage"
SETTLE_S = 3  # the guest waits this long after READY, while the host reads the idle disk
LARGE_FILE_BYTES = 10 * 2**20
BLOCK = 4096
NATIVE_LAYER = "none: the shared image root, read-only; a scratch folder of its own on /var/tmp"


# -- parsers (tested on captured output) ---------------------------------------------------


def upper_dir(inspect: dict) -> Path:
    """A container's writable layer from `docker inspect` (one container's object)."""
    driver = inspect.get("GraphDriver") or {}
    upper = (driver.get("Data") or {}).get("UpperDir")
    if not upper:
        raise RuntimeFailure(f"storage driver {driver.get('Name')!r} has no UpperDir: "
                             "only overlay2 is measured")
    return Path(upper)


def qcow2_actual_size(info: dict) -> int:
    """Bytes the overlay file occupies on the host (`qemu-img info --output=json`)."""
    return int(info["actual-size"])


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


def run_storage(runner) -> None:
    scenario = runner.scenario
    image = runner.context.image
    guest_path, file_bytes = largest_file(image.root)
    image_bytes = du_bytes(image.disk)
    print(f"run {runner.run_id}: storage, {scenario.reps} reps over "
          f"{', '.join(runner.runtimes)}; first/second write into {guest_path} "
          f"({file_bytes / 2**20:.1f} MiB) -> {runner.out_dir}", flush=True)
    base_tags = {"cpus": scenario.cpus, "memory_mib": scenario.memory_mib,
                 "write_file": guest_path, "write_file_bytes": file_bytes,
                 "image_disk_bytes": image_bytes}
    specs = [s for s in scenario.runtimes if s.name in runner.runtimes]
    for spec in specs:
        if spec.kind == "qemu":
            runner.store.append(_full_copy(runner, spec, base_tags))
    for rep in range(scenario.reps):
        for spec in specs:
            records = _one_instance(runner, spec, rep, guest_path, base_tags)
            runner.store.append(records)
            shown = {r.metric: r.value for r in records}
            errors = [r.error for r in records if r.error]
            print(f"  {spec.name} rep {rep}: " + (f"failed: {errors[0][:200]}" if errors and
                  shown.get("storage.instance_disk_bytes") is None else
                  _summary(shown)), flush=True)


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


def _full_copy(runner, spec, base_tags: dict) -> list:
    """The contrast to an overlay: a VM given its own full copy of the base disk."""
    image = runner.context.image
    target = runner.context.workdir / "full-copy.raw"
    token = runner.cleanup.add("full disk copy", lambda: target.unlink(missing_ok=True))
    tags = {**base_tags, **runner.runtimes[spec.name].tags(), "layer": "full copy of the base disk"}
    try:
        t0 = time.monotonic()
        # cp as a user would make a VM its own disk: holes of the sparse base stay holes
        run_text(["cp", "--sparse=auto", str(image.disk), str(target)], timeout=600)
        os.sync()
        seconds = time.monotonic() - t0
        size = du_bytes(target)
        return [record(runner, CELL, spec, 0, tags, "storage.full_copy_bytes", size, "bytes"),
                record(runner, CELL, spec, 0, tags, "storage.full_copy_s", seconds, "s")]
    except (OSError, subprocess.SubprocessError) as exc:
        return [record(runner, CELL, spec, 0, tags, "storage.full_copy_bytes", None, "bytes",
                       error=f"copy failed: {exc}")]
    finally:
        runner.cleanup.release(token)


def _one_instance(runner, spec, rep: int, guest_path: str, base_tags: dict) -> list:
    runtime = runner.runtimes[spec.name]
    tags = {**base_tags, **runtime.tags()}
    rec = lambda metric, value, unit, error=None: record(  # noqa: E731
        runner, CELL, spec, rep, tags, metric, value, unit, error)
    native = spec.kind == "native"
    tags["layer"] = {"native": NATIVE_LAYER, "qemu": "qcow2 overlay"}.get(spec.kind,
                                                                         "overlay2 upper dir")
    name = runner.instance_name()
    inst = None
    values = []
    try:
        # Natively the root is the shared image itself (read-only): the instance idles,
        # and what it owns on disk is its scratch folder, bound where others have a layer.
        command, needs = ((f"sleep {SETTLE_S}", Needs(scratch=True)) if native
                          else (write_command(guest_path), NO_NEEDS))
        inst = runtime.launch(command, Limits(runner.scenario.cpus, runner.scenario.memory_mib),
                              name, needs=needs)
        tags.update(inst.tags)
        deadline = inst.t_launch + runner.scenario.timeout_s
        ready = inst.lines.wait_for("READY", deadline)
        values.append(("startup.ready_s", ready.t - inst.t_launch, "s", None))
        values.append(("storage.instance_disk_bytes", instance_disk(inst), "bytes", None))
        done = inst.lines.wait_for("DONE", deadline)
        inst.wait_gone(max(1.0, deadline - time.monotonic()))
        code = int(done.event[1])
        output = inst.lines.output_between(ready, done)
        if code != 0:
            raise RuntimeFailure(f"write test exit code {code}: {output[-300:]}")
        if native:
            why = "not run: a native instance would write into the shared image root itself"
            values += [("storage.first_write_s", None, "s", why),
                       ("storage.second_write_s", None, "s", why)]
            return [rec(*v) for v in values]
        times = parse_write_times(output)
        for metric in ("storage.first_write_s", "storage.second_write_s"):
            values.append((metric, times.get(metric), "s",
                           None if metric in times else f"no {metric} in: {output[-200:]}"))
        values.append(("storage.instance_disk_after_write_bytes", instance_disk(inst), "bytes",
                       None))
    except Exception as exc:  # the cell fails, the run goes on
        if not any(m == "startup.ready_s" for m, *_ in values):
            values.append(("startup.ready_s", None, "s", f"{type(exc).__name__}: {exc}"))
        else:
            values.append(("storage.first_write_s", None, "s", f"{type(exc).__name__}: {exc}"))
        runner.failed_cells.add(f"{CELL}@{spec.name}")
    finally:
        if inst is not None:
            runner.cleanup.release(inst.cleanup_token)
    return [rec(*v) for v in values]


def instance_disk(inst) -> int:
    """Bytes this instance added on the host's disk, read from the host."""
    overlay = getattr(inst, "overlay", None)
    if overlay is not None:  # a VM: its qcow2 overlay; -U reads it while QEMU holds it
        return qcow2_actual_size(json.loads(run_text(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)])))
    if getattr(inst, "container", None) is None:  # native: the folders bound into its root
        return sum(du_bytes(path) for path in inst.scratch)
    inst.container.reload()
    return du_bytes(upper_dir(inst.container.attrs))
