#!/bin/busybox sh
# /init of the kdiag lab guest (busybox sh). One script for both kernels: the first kernel
# arms kdump and waits for commands; the capture kernel (it has /proc/vmcore) saves the dump
# to the virtio disk and reboots. Every line for the host starts with "LAB: ".
#
# Kernel command line parameters read here:
#   lab_name=N          hostname
#   lab_profile=P       profile name (shown in the readiness line)
#   lab_sysctl=k=v,...  sysctls to set in the first kernel (dots in k)
#   lab_kdump=0|1       load the capture kernel with kexec -p
#   lab_capture=save|hang   what the capture kernel does
#   lab_dump=o_o/o_o    makedumpfile option sets, "_" for spaces, "/" between sets
#   lab_capargs=a_b     extra capture kernel parameters
#   lab_tty=T           console device for the LAB: lines (ttyS0; ttyAMA0 on arm64)
#   lab_cmdtty=T        command channel device (ttyS1; hvc0, a virtio console, on arm64)
# The modules each kernel loads, dependencies first, are listed in /lib/modules/first.list and
# /lib/modules/capture.list (written by the build for the guest's architecture).
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

arg() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1"=*) echo "${word#*=}"; return ;; esac
    done
}
TTY=$(arg lab_tty)
[ -n "$TTY" ] || TTY=ttyS0
CMDTTY=$(arg lab_cmdtty)
[ -n "$CMDTTY" ] || CMDTTY=ttyS1
say() { echo "LAB: $* [uptime=$(cut -d' ' -f1 /proc/uptime)]" > /dev/$TTY; }
load() {
    for m in "$@"; do
        insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m FAILED"
    done
}
KVER=$(uname -r)
NAME=$(arg lab_name)
[ -n "$NAME" ] && hostname "$NAME"

# --------------------------------------------------------------------------- capture kernel
if [ -e /proc/vmcore ]; then
    say "capture kernel $KVER up; cmdline: $(cat /proc/cmdline)"
    say "/proc/vmcore size=$(stat -c %s /proc/vmcore) $(grep MemTotal /proc/meminfo)"
    if [ "$(arg lab_capture)" = hang ]; then
        say "LAB-CAPTURE-HANG (profile capture-hang: never writing the dump)"
        while :; do sleep 3600; done
    fi
    load $(cat /lib/modules/capture.list)
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    if ! mount -t ext4 /dev/vda /mnt; then
        say "LAB-DUMP-FAILED mount /dev/vda"
        reboot -f
    fi
    rm -f /mnt/vmcore* /mnt/dumps.txt /mnt/dmesg.txt /mnt/DONE
    sets=$(arg lab_dump)
    [ -n "$sets" ] || sets="-c_-d_31"
    n=0
    for set in $(echo "$sets" | tr '/' ' '); do
        n=$((n + 1))
        opts=$(echo "$set" | tr '_' ' ')
        start=$(cut -d' ' -f1 /proc/uptime)
        case " $opts " in
            *" -F "*) makedumpfile $opts /proc/vmcore > "/mnt/vmcore.$n" 2>/tmp/mdf.err; rc=$? ;;
            *) makedumpfile $opts /proc/vmcore "/mnt/vmcore.$n" 2>/tmp/mdf.err >&2; rc=$? ;;
        esac
        sync
        end=$(cut -d' ' -f1 /proc/uptime)
        size=$(stat -c %s "/mnt/vmcore.$n" 2>/dev/null || echo 0)
        grep -v '^$' /tmp/mdf.err | tail -n 3 | while read -r l; do say "makedumpfile: $l"; done
        echo "$n rc=$rc size=$size start=$start end=$end opts=$set" >> /mnt/dumps.txt
        say "LAB-SAVED n=$n rc=$rc size=$size opts=$set start=$start end=$end"
    done
    makedumpfile --dump-dmesg /proc/vmcore /mnt/dmesg.txt > /dev/null 2>&1 \
        || vmcore-dmesg /proc/vmcore > /mnt/dmesg.txt 2>/dev/null
    echo done > /mnt/DONE
    sync
    umount /mnt
    say "LAB-DUMP-DONE count=$n"
    reboot -f
fi

# ----------------------------------------------------------------------------- first kernel
say "first kernel $KVER up; cmdline: $(cat /proc/cmdline)"
load $(cat /lib/modules/first.list)
[ -e /lib/modules/crashme.ko ] && load crashme
[ -e /sys/firmware/qemu_fw_cfg/by_name/etc/vmcoreinfo ] && say "fw_cfg etc/vmcoreinfo present"
for kv in $(arg lab_sysctl | tr ',' ' '); do
    key=${kv%%=*}
    path=/proc/sys/$(echo "$key" | tr '.' '/')
    if [ -e "$path" ]; then echo "${kv#*=}" > "$path"; else say "sysctl $key absent"; fi
done
loaded=0
if [ "$(arg lab_kdump)" != 0 ]; then
    capargs="console=$TTY irqpoll nr_cpus=1 reset_devices panic=1 lab_name=$NAME lab_tty=$TTY"
    capargs="$capargs lab_capture=$(arg lab_capture) lab_dump=$(arg lab_dump)"
    extra=$(arg lab_capargs)
    [ -n "$extra" ] && capargs="$capargs $(echo "$extra" | tr '_' ' ')"
    # Debian's arm64 kernel lists no _text in /proc/kallsyms (no CONFIG_KALLSYMS_ALL):
    # kexec -p then builds a broken ELF core header, says "Can't get the symbol of _text"
    # and still exits 0, and the capture kernel cannot save a dump. Give it _text, 64 KiB
    # below _stext (arm64's head text), in a copy bind-mounted over /proc/kallsyms.
    # lab_text_fix=0 leaves the trap armed (profile text-trap).
    if ! grep -q ' _text$' /proc/kallsyms && [ "$(arg lab_text_fix)" != 0 ]; then
        stext=$(grep ' _stext$' /proc/kallsyms | cut -d' ' -f1)
        high=${stext%????????}
        low=${stext#"$high"}
        if [ -n "$stext" ] && [ "$((0x$low))" -ge 65536 ]; then
            text=$high$(printf '%08x' $((0x$low - 65536)))
            { cat /proc/kallsyms; echo "$text T _text"; } > /tmp/kallsyms
            mount --bind /tmp/kallsyms /proc/kallsyms && kallsyms_fixed=1
            say "kallsyms: added $text T _text (_stext=$stext)"
        else
            say "kallsyms: no _text and no usable _stext ($stext)"
        fi
    fi
    if kexec -p /boot/vmlinuz --initrd=/boot/capture.img --append="$capargs" 2>/tmp/kexec.err; then
        say "kexec -p rc=0"
        # kexec can complain and still exit 0 (the arm64 _text trap): show what it said
        [ -s /tmp/kexec.err ] && say "kexec -p said: $(tail -n 2 /tmp/kexec.err | tr '\n' ' ')"
    else
        say "kexec -p FAILED: $(tail -n 2 /tmp/kexec.err | tr '\n' ' ')"
    fi
    # the copy stays mounted: a reload (kdump-tools does one on hotplug) needs it again, and
    # doctor's kexec-text-symbol check reads it from the facts
    loaded=$(cat /sys/kernel/kexec_crash_loaded 2>/dev/null || echo 0)
fi

# SSH (lab_sshkey=TYPE:BASE64, the lab root's client key): Debian's dropbear on port 22 of
# QEMU's user-mode network, which forwards one host loopback port here. The host key comes
# through fw_cfg (OpenSSH format, converted); without it dropbear makes one (-R).
sshkey=$(arg lab_sshkey)
if [ -n "$sshkey" ] && [ -x /usr/sbin/dropbear ]; then
    mkdir -p /dev/pts /etc/dropbear /root/.ssh
    mount -t devpts devpts /dev/pts 2>/dev/null
    echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
    echo "root:x:0:" > /etc/group
    echo /bin/sh > /etc/shells
    echo "$sshkey" | tr ':' ' ' > /root/.ssh/authorized_keys
    chmod 700 /root /root/.ssh
    chmod 600 /root/.ssh/authorized_keys
    i=0
    while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    ip link set lo up
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
    hostkey=/sys/firmware/qemu_fw_cfg/by_name/opt/kdiag/ssh_host_key/raw
    keyopt=-R
    if [ -r $hostkey ] && cat $hostkey > /tmp/host_key \
        && dropbearconvert openssh dropbear /tmp/host_key /etc/dropbear/host_key >/dev/null 2>&1
    then
        keyopt="-r /etc/dropbear/host_key"
    fi
    rm -f /tmp/host_key
    if dropbear $keyopt -p 22 -s -j -k -P /tmp/dropbear.pid 2>/tmp/dropbear.err; then
        say "ssh: dropbear listening on port 22 ($keyopt)"
    else
        say "ssh: dropbear FAILED: $(tail -n 2 /tmp/dropbear.err | tr '\n' ' ')"
    fi
fi

# a little activity so the dump holds more than idle tasks
(while :; do sleep 5; done) &

if [ -x /kdiag/collect.sh ]; then
    read -r printk < /proc/sys/kernel/printk
    echo 1 > /proc/sys/kernel/printk
    /kdiag/collect.sh > /tmp/facts.json 2>/tmp/facts.err
    rc=$?
    {
        echo "LAB: LAB-FACTS-BEGIN rc=$rc"
        base64 < /tmp/facts.json
        echo "LAB: LAB-FACTS-END"
    } > /dev/$TTY
    echo "$printk" > /proc/sys/kernel/printk
fi

# open the command channel (the second serial port, or the virtio console) before announcing
# readiness: bytes that arrive while the port is closed are dropped
i=0
while [ ! -e /dev/$CMDTTY ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
stty -F /dev/$CMDTTY raw -echo 2>/dev/null
exec 3< /dev/$CMDTTY

say "LAB-READY kdump_loaded=$loaded profile=$(arg lab_profile)"

trigger() {
    case "$1" in
        sysrq-c) echo 1 > /proc/sys/kernel/sysrq; (echo c > /proc/sysrq-trigger) & ;;
        oom)
            echo 1 > /proc/sys/vm/panic_on_oom
            mkdir -p /oom && mount -t ramfs ramfs /oom
            (dd if=/dev/zero of=/oom/fill bs=1M 2>/dev/null) & ;;
        hung-task)
            echo 1 > /proc/sys/kernel/hung_task_panic
            echo 3 > /proc/sys/kernel/hung_task_timeout_secs
            echo 1 > /proc/sys/kernel/hung_task_check_interval_secs 2>/dev/null
            (echo hung > /proc/crashme) & ;;
        null | bug | gpf)
            echo 1 > /proc/sys/kernel/panic_on_oops
            (echo "$1" > /proc/crashme) & ;;
        warn)
            echo 1 > /proc/sys/kernel/panic_on_warn
            (echo warn > /proc/crashme) & ;;
        softlockup)
            echo 1 > /proc/sys/kernel/softlockup_panic
            echo 3 > /proc/sys/kernel/watchdog_thresh
            (echo softlockup > /proc/crashme) & ;;
        rcu)
            echo 0 > /proc/sys/kernel/softlockup_panic
            echo 1 > /proc/sys/kernel/panic_on_rcu_stall
            echo 1 > /proc/sys/kernel/max_rcu_stall_to_panic 2>/dev/null
            echo 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout
            (echo rcu > /proc/crashme) & ;;
        *) say "unknown command $1"; return ;;
    esac
}

# the command channel: one word per line; each is acknowledged on the console
while :; do
    if read -r cmd <&3; then
        cmd=$(echo "$cmd" | tr -d '\r')
        [ -n "$cmd" ] || continue
        say "command $cmd"
        trigger "$cmd"
    else
        sleep 1
    fi
done
