#!/bin/sh
# cvbench agent: the same protocol in every runtime.
#   CVBENCH READY <uptime s> <kernel>   the instance can run work (host stops the startup clock);
#                                       the kernel it sees tells whether it shares the host's
#   ...workload output...
#   CVBENCH DONE <exit code>
# Containers and native runs pass the workload as $1. In a VM the agent is init
# (PID 1, no arguments): it mounts the pseudo file systems, reads the workload
# from the kernel command line (cvbench.cmd=<base64>) and powers off at the end.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

if [ "$#" -eq 0 ]; then
    vm=1
    # The initramfs has usually mounted these already: only fill the gaps.
    [ -e /proc/uptime ] || mount -t proc proc /proc
    [ -d /sys/kernel ] || mount -t sysfs sysfs /sys
    [ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
    mount -t tmpfs tmpfs /tmp
    for word in $(cat /proc/cmdline); do
        case "$word" in cvbench.cmd=*) encoded="${word#cvbench.cmd=}" ;; esac
    done
    cmd=$(printf '%s' "$encoded" | base64 -d)
else
    vm=
    cmd=$1
fi

read -r uptime _ </proc/uptime
echo "CVBENCH READY $uptime $(uname -r)"
sh -c "$cmd"
rc=$?
echo "CVBENCH DONE $rc"

if [ -n "$vm" ]; then
    sync
    busybox poweroff -f
fi
exit "$rc"
