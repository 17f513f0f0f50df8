"""Boot the lab under emulation with SVM exposed, run one job in it, bring its exit code back.

The lab sees the project tree at /project (9p) and writes its results there; its own disk
is a throw-away overlay on the cached lab image, so every boot starts from the same state.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.errors import UserError
from bench.lab.image import LabImage

QEMU = "qemu-system-x86_64"


def lab_argv(image: LabImage, overlay: Path, project: Path, job_dir: str, cpus: int,
             memory_mib: int) -> list[str]:
    # -cpu max: TCG emulates AMD SVM, so the lab's kvm_amd gives it a working nested KVM.
    # vgif off, no transparent huge pages: a nested guest once wedged a lab CPU for good
    # (soft lockup, khugepaged blocked) with both on.
    append = ("root=/dev/vda rw console=ttyS0 quiet systemd.unified_cgroup_hierarchy=1 "
              f"transparent_hugepage=never systemd.show_status=0 cvbench.lab={job_dir}")
    return [QEMU, "-accel", "tcg,thread=multi", "-cpu", "max,vgif=off", "-smp", str(cpus),
            "-m", str(memory_mib), "-kernel", str(image.kernel), "-initrd", str(image.initrd),
            "-append", append, "-drive", f"file={overlay},format=qcow2,if=virtio",
            "-virtfs", f"local,path={project},mount_tag=project,security_model=none,id=project",
            "-nic", "none", "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]


def run_in_lab(image: LabImage, project: Path, job_dir: Path, job: str, timeout_s: float,
               cpus: int = 2, memory_mib: int = 6144) -> int | None:
    """Write job (sh lines run in /project) into job_dir, boot the lab, stream its console
    to the terminal and to job_dir/console.log; the job's exit code, or None when the lab
    stopped without one (it crashed, or ran past timeout_s and was killed)."""
    if not shutil.which(QEMU):
        raise UserError(f"{QEMU} is not installed: the lab runs in it", fix="apt-get install qemu-system-x86")
    project = project.resolve()
    job_dir = job_dir.resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "job").write_text(job)
    (job_dir / "rc").unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="cvbench-lab-") as tmp:
        overlay = Path(tmp) / "lab.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image.disk), "-F", "raw",
                        str(overlay)], check=True)
        argv = lab_argv(image, overlay, project, str(job_dir.relative_to(project)), cpus, memory_mib)
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        wedged: list[str] = []
        copier = threading.Thread(target=_copy_console, daemon=True,
                                  args=(proc, job_dir / "console.log", started, wedged))
        copier.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(f"[lab] ran past {timeout_s:.0f} s: stopping it", flush=True)
        finally:  # Ctrl-C and timeouts alike: no lab is left running
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            copier.join(timeout=5)
    if wedged:
        print(f"[lab] stopped it: {wedged[0]}", flush=True)
    rc = job_dir / "rc"
    return int(rc.read_text()) if rc.exists() and rc.read_text().strip() else None


# "watchdog: BUG: soft lockup - CPU#1 stuck for 249s!"
SOFT_LOCKUP = re.compile(rb"soft lockup - CPU#\d+ stuck for (\d+)s")
WEDGED_AFTER_S = 180


def _copy_console(proc: subprocess.Popen, log: Path, started: float, wedged: list[str]) -> None:
    """Console to log and terminal. A lab CPU stuck for minutes will not come back (nested
    KVM under TCG has wedged one for good): the lab is stopped then, not at the timeout."""
    with open(log, "wb") as out:
        for line in proc.stdout:
            out.write(line)
            out.flush()
            text = line.decode(errors="replace").rstrip()
            if text:
                print(f"[lab {time.monotonic() - started:6.0f} s] {text}", flush=True)
            stuck = stuck_seconds(line)
            if stuck is not None and stuck >= WEDGED_AFTER_S and not wedged:
                wedged.append(f"a lab CPU was stuck for {stuck} s (soft lockup; see console.log)")
                os.killpg(proc.pid, signal.SIGKILL)


def stuck_seconds(console_line: bytes) -> int | None:
    """How long the kernel says a CPU has been stuck, from its soft-lockup warning."""
    found = SOFT_LOCKUP.search(console_line)
    return int(found.group(1)) if found else None
