#!/bin/sh
# kdiag lab, Debian 12 guest: run by kdiag-lab-ready.service once the first kernel has
# booted (after kdump-tools.service). It tells the lab supervisor, on the serial console,
# what the busybox guest's /init tells it: the boot, the readiness facts (the collector's
# JSON, base64) and the readiness marker. It also lists what /var/crash holds.
TTY=/dev/ttyS0
say() { echo "LAB: $*" > "$TTY"; }

say "first kernel $(uname -r) up; cmdline: $(cat /proc/cmdline)"
read -r printk < /proc/sys/kernel/printk
echo 1 > /proc/sys/kernel/printk
sh /usr/local/lib/kdiag/collect.sh > /run/kdiag-facts.json 2> /run/kdiag-facts.err
rc=$?
{
    echo "LAB: LAB-FACTS-BEGIN rc=$rc"
    base64 < /run/kdiag-facts.json
    echo "LAB: LAB-FACTS-END"
} > "$TTY"
echo "$printk" > /proc/sys/kernel/printk
for dir in /var/crash/*/; do
    [ -d "$dir" ] || continue
    say "LAB-DEBIAN-CRASH dir=$dir files=$(ls "$dir" | tr '\n' ',')"
done
loaded=$(cat /sys/kernel/kexec_crash_loaded 2> /dev/null || echo 0)
service=$(systemctl is-active kdump-tools.service 2> /dev/null)
say "LAB-READY kdump_loaded=$loaded kdump_tools=${service:-unknown} profile=debian"
