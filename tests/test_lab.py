"""The lab's pure parts: the job it runs, how QEMU boots it, the names of Docker slices."""

from pathlib import Path

from bench.lab.image import LabImage, python_requirements
from bench.lab.job import job_script
from bench.lab.vm import lab_argv, stuck_seconds
from bench.collect.slices import instance_slice, slice_path

REPO = Path(__file__).parent.parent


def test_job_runs_doctor_the_scenario_and_the_tests_and_keeps_the_worst_code():
    job = job_script("scenarios/lab.toml", "results/lab-1", "results/.lab-1.lab", 2, True,
                     ["tests/integration/test_host_shape.py"])
    lines = job.splitlines()
    assert lines[0] == "rc=0" and lines[-1] == "exit $rc"
    run = "python -m bench.cli run scenarios/lab.toml --out results/lab-1 --no-report --reps 2 --quick"
    assert f"{run} || rc=$?" in lines
    assert any(line.startswith("python -m pytest") and "test_host_shape.py" in line
               and "--junitxml=results/.lab-1.lab/pytest.xml" in line for line in lines)
    assert "pytest" not in job_script("s.toml", "r", "l", None, False, [])


def test_lab_boots_with_svm_exposed_and_the_project_shared():
    image = LabImage("lab-x", "/cache/lab-x", "g", 0.0, 1.0, "6.1.0-56-amd64")
    argv = lab_argv(image, Path("/tmp/o.qcow2"), Path("/work/p"), "results/.lab-1.lab", 2, 6144)
    assert argv[argv.index("-cpu") + 1].startswith("max")  # TCG's max CPU has AMD SVM: nested KVM
    assert argv[argv.index("-accel") + 1].startswith("tcg")
    assert "local,path=/work/p,mount_tag=project,security_model=none,id=project" in argv
    append = argv[argv.index("-append") + 1]
    assert "systemd.unified_cgroup_hierarchy=1" in append and "cvbench.lab=results/.lab-1.lab" in append
    assert argv[argv.index("-kernel") + 1] == "/cache/lab-x/vmlinuz-6.1.0-56-amd64"


def test_the_lab_installs_the_projects_dependencies():
    requirements = python_requirements(REPO / "pyproject.toml")
    assert "docker>=7.0" in requirements and "pytest" in requirements
    assert not any(r.startswith("ipykernel") for r in requirements)  # notebooks are not run there


def test_instance_slice_nests_once_under_cvbench_slice():
    # a dash in a slice name is a level of nesting: the instance's own dashes must not be
    name = instance_slice("cvbench-20261129t052426z-cvbench-lab-7")
    assert name == "cvbench-20261129t052426z_cvbench_lab_7.slice"
    assert slice_path(name) == "cvbench.slice/cvbench-20261129t052426z_cvbench_lab_7.slice"


def test_a_wedged_lab_cpu_is_recognised_from_the_console(golden):
    # captured from a CI lab run where a nested KVM guest wedged a lab CPU for good
    lines = (golden / "lab_console_soft_lockup.txt").read_bytes().splitlines()
    assert [stuck_seconds(line) for line in lines] == [48, 74, 104, None]


def test_without_vms_the_run_and_the_tests_leave_them_out():
    job = job_script("scenarios/lab.toml", "results/lab-1", "results/.lab-1.lab", None, True,
                     ["tests/integration/test_host_shape.py"], runtimes=["native", "runc"])
    run, tests = job.splitlines()[2:4]
    assert run.endswith("--quick --runtimes native,runc || rc=$?")
    assert tests.startswith("CVBENCH_NO_VMS=1 python -m pytest")
