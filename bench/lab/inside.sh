#!/bin/sh
# In the lab, started by systemd once Docker is up: runs the job the host left in the
# shared project tree (its folder is named on the kernel command line), records the
# exit code next to it, and powers the lab off.
job=$(sed -n 's/.*cvbench\.lab=\([^ ]*\).*/\1/p' /proc/cmdline)
cd /project || { echo "cvbench lab: /project is not mounted"; systemctl poweroff; exit 1; }
export CVBENCH_HOST_SHAPE=lab PYTHONPATH=/project PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
export PATH=/opt/cvbench/bin:$PATH TERM=dumb COLUMNS=120
echo "CVBENCH LAB START uptime $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)," \
     "cgroup fs $(stat -fc %T /sys/fs/cgroup), /dev/kvm $(test -c /dev/kvm && echo present || echo missing)"
sh "$job/job" 2>&1
echo $? > "$job/rc"
echo "CVBENCH LAB DONE $(cat "$job/rc") uptime $(cut -d' ' -f1 /proc/uptime) s"
sync
systemctl poweroff --no-block
