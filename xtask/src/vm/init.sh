#!/bin/sh
# /init of the test VM that `cargo xtask vm` boots, run as PID 1 from the
# initramfs by the host's /bin/sh (dash on Debian). It mounts what the listns tests expect of a
# distribution, loads the modules they need, runs each test binary and powers
# the VM off.
#
# The kernel log goes to the console (ttyS0). Everything this script and the
# tests print goes to ttyS1, which the host reads, between marker lines:
#   LISTNS-VM-BOOT RELEASE
#   LISTNS-VM-MODULE PATH EXIT_STATUS
#   LISTNS-VM-HOOK LINE   (one per hook, from the log of `listns --follow -v`)
#   LISTNS-VM-BEGIN BINARY
#   LISTNS-VM-END BINARY EXIT_STATUS
#   LISTNS-VM-DONE
# Configuration files in /etc/listns-vm, written by the host:
#   settings  shell assignments TEST_TIMEOUT (seconds), TEST_THREADS, WORKDIR,
#             LISTNS (the listns executable)
#   modules   module files to load, in order
#   tests     one `NAME PATH` line per test binary
#   args      arguments for every test binary, one per line

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# A distribution's root file system is mounted over the initramfs (rootfs),
# which stays the root mount of the initial mount namespace, and switch_root
# or run-init changes the process root to it. Some kernel interfaces (such as
# listmount from LSMT_ROOT, or pivot_root) tell the two apart. A bind mount of
# the initramfs moved over / and a chroot into it give the same layout
# without copying the tree.
if [ "$1" != --moved-root ]; then
	busybox mount --bind / /newroot
	cd /newroot
	busybox mount --move . /
	exec busybox chroot . /init --moved-root
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tracefs nodev /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup

# Raw mode keeps the tty from turning each \n into \r\n.
stty -F /dev/ttyS1 raw -echo
exec >/dev/ttyS1 2>&1

echo "LISTNS-VM-BOOT $(uname -r)"
hostname listns-vm
ip link set lo up

while read -r module; do
	insmod "$module"
	echo "LISTNS-VM-MODULE $module $?"
done </etc/listns-vm/modules

. /etc/listns-vm/settings
set --
while IFS= read -r argument; do
	set -- "$@" "$argument"
done </etc/listns-vm/args

# Which hooks `listns --follow` attaches on this kernel: its -v log names
# each hook once it is ready to follow, and SIGINT stops it.
"$LISTNS" --follow -v >/dev/null 2>/tmp/listns-hooks.log &
follower=$!
waited=0
while kill -0 "$follower" 2>/dev/null && [ "$waited" -lt 300 ] &&
	! grep -q "following namespace changes" /tmp/listns-hooks.log; do
	sleep 1
	waited=$((waited + 1))
done
kill -INT "$follower" 2>/dev/null
# A follower that does not stop would hold up every test, so it gets 30 s.
# Its threads' states and kernel stacks then go to the log.
# NOTE: one boot of Debian 6.1 hung here, with no hook line printed. The
# cause is unknown, and these stacks are meant to show it.
stopping=0
while kill -0 "$follower" 2>/dev/null && [ "$stopping" -lt 30 ]; do
	sleep 1
	stopping=$((stopping + 1))
done
if kill -0 "$follower" 2>/dev/null; then
	echo "LISTNS-VM-HOOK hook recording failed: listns --follow -v did not stop within 30 s of SIGINT, killed (see console.log)"
	for task in /proc/"$follower"/task/*; do
		echo "listns thread ${task##*/}: $(cut -d' ' -f3 "$task/stat") wchan $(cat "$task/wchan")"
		cat "$task/stack" 2>/dev/null
	done
	tail -n 20 /tmp/listns-hooks.log
	kill -KILL "$follower"
fi
wait "$follower"
# sed replaces the `listns: ` prefix of each log line with the marker.
grep -E '^listns: hook [a-z_]+ (attached|not attached)' /tmp/listns-hooks.log | sed 's/^listns: /LISTNS-VM-HOOK /'

cd "$WORKDIR" || echo "cannot enter $WORKDIR, running the tests in $(pwd)"
while read -r name path; do
	echo "LISTNS-VM-BEGIN $name"
	# coreutils timeout signals the whole process group of the binary, with
	# the test's children, and exits with 124 (137 after the SIGKILL).
	timeout -k 10 "$TEST_TIMEOUT" "$path" --test-threads "$TEST_THREADS" "$@" </dev/null
	status=$?
	# The output may end without a newline, and the marker must start a line.
	printf '\nLISTNS-VM-END %s %s\n' "$name" "$status"
done </etc/listns-vm/tests

echo "LISTNS-VM-DONE"
sync
poweroff -f
# poweroff returns only when it failed. Without init the kernel panics, and
# panic=-1 with QEMU's -no-reboot ends the VM as well.
echo "poweroff -f failed; ending PID 1"
exit 1
