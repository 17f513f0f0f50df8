#!/bin/sh
# cvbench agent: the same protocol in every runtime.
#   CVBENCH READY <uptime s> <kernel> <boot id> <uptime at start> <wall clock at start>
#                                       the instance can run work (host stops the startup clock);
#                                       the boot id of the kernel it sees tells whether it
#                                       shares the host's ("-" where there is none to read);
#                                       when the agent began, on the kernel's clock (a VM's
#                                       own) and the wall clock (a container's is the host's)
#   ...workload output...
#   CVBENCH SERVING <port> ...          (serving workloads) the host may connect now
#   CVBENCH DONE <exit code>
# Told to await its workload (cvbench.await=1 in a VM, --await as $1 elsewhere), the agent
# prints "CVBENCH WAITING <uptime s>" once set up, then reads the workload, base64, as one
# line on its standard input (a VM's serial console): an instance snapshotted while it
# waits takes its workload after the restore, and READY follows.
# Containers and native runs pass the workload as $1. In a VM the agent is init
# (PID 1, no arguments): it mounts the pseudo file systems, reads the workload
# from the kernel command line (cvbench.cmd=<base64>) and powers off at the end.
# cvbench.net=user|ADDR/PREFIX asks for the network (QEMU user networking, or a tap
# link with this address), cvbench.volume=1 for
# the extra disk /dev/vdb mounted on /mnt/volume, cvbench.pids=N for a process limit.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
started=$(date +%s.%N)

if [ "$#" -eq 0 ]; then
    vm=1
    # The initramfs has usually mounted these already: only fill the gaps.
    [ -e /proc/uptime ] || mount -t proc proc /proc
    read -r started_uptime _ </proc/uptime
    [ -d /sys/kernel ] || mount -t sysfs sysfs /sys
    [ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
    mount -t tmpfs tmpfs /tmp
    for word in $(cat /proc/cmdline); do
        case "$word" in
            cvbench.cmd=*) encoded="${word#cvbench.cmd=}" ;;
            cvbench.net=*) net="${word#cvbench.net=}" ;;
            cvbench.volume=1) volume=1 ;;
            cvbench.pids=*) pids="${word#cvbench.pids=}" ;;
            cvbench.await=1) await=1 ;;
        esac
    done
    cmd=$(printf '%s' "$encoded" | base64 -d)
    busybox ip link set lo up
    if [ -n "$net" ]; then
        # The initramfs's udev may have loaded the NIC driver and named the NIC (ens3);
        # without it, load the driver by hand.
        modprobe virtio_net 2>/dev/null
        nic=
        for try in 1 2 3 4 5 6 7 8 9 10; do
            for dev in /sys/class/net/*; do
                [ "${dev##*/}" = lo ] || nic=${dev##*/}
            done
            [ -n "$nic" ] && break
            sleep 0.2
        done
        busybox ip link set "$nic" up
        if [ "$net" = user ]; then  # QEMU user networking's fixed addresses
            busybox ip addr add 10.0.2.15/24 dev "$nic"
            busybox ip route add default via 10.0.2.2
        else  # a tap link to the host: this address only, no route beyond
            busybox ip addr add "$net" dev "$nic"
        fi
    fi
    if [ -n "$pids" ]; then
        # The same process limit a container gets, kept by the guest's kernel: the
        # workload runs in a pids cgroup of its own.
        mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
        echo +pids >/sys/fs/cgroup/cgroup.subtree_control
        mkdir -p /sys/fs/cgroup/workload
        echo "$pids" >/sys/fs/cgroup/workload/pids.max
        echo $$ >/sys/fs/cgroup/workload/cgroup.procs
    fi
    if [ -n "$volume" ]; then
        mkdir -p /mnt/volume
        mount -t ext4 /dev/vdb /mnt/volume
    fi
else
    vm=
    cmd=$1
    [ "$cmd" = --await ] && await=1
    read -r started_uptime _ </proc/uptime
fi

if [ -n "$await" ]; then
    stty -echo 2>/dev/null  # a console would echo the workload line back to the host
    read -r uptime _ </proc/uptime
    echo "CVBENCH WAITING $uptime"
    read -r encoded
    cmd=$(printf '%s' "$encoded" | base64 -d)
fi

read -r uptime _ </proc/uptime
read -r boot_id 2>/dev/null </proc/sys/kernel/random/boot_id || boot_id=-
echo "CVBENCH READY $uptime $(uname -r) ${boot_id:--} $started_uptime $started"
sh -c "$cmd"
rc=$?
echo "CVBENCH DONE $rc"

if [ -n "$vm" ]; then
    sync
    busybox poweroff -f
fi
exit "$rc"
