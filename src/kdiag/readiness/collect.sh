#!/bin/sh
# kdiag readiness facts collector (schema 1).
#
# Prints ONE JSON document with the facts `kdiag doctor --facts FILE` checks: kernel, command
# line, kexec/crashkernel state, panic sysctls, kdump service, kdump/grub/sysctl files,
# os-release, DMI strings, hypervisor hints, hv_* modules, memory, CPUs, the free space of
# the dump target and whether /proc/kallsyms lists _text.  POSIX sh; runs under busybox sh,
# dash and bash and uses only busybox applets (cat, awk, sed, grep, df, uname, ls, readlink,
# tail).  It changes nothing.
#
# Usage: sh collect.sh [ROOT]      (or KDIAG_ROOT=ROOT sh collect.sh)
# ROOT is a directory holding proc/, sys/ and etc/ in place of the real ones (tests, chroots).
#
# The Python reader (kdiag.readiness.facts) produces the same document from the same tree.
# Rules shared with it: a file's value is its content with trailing newlines removed; files
# under "files" keep their exact content; an absolute symlink inside ROOT is followed inside
# ROOT (one level).

LC_ALL=C
export LC_ALL
R="${1:-${KDIAG_ROOT:-}}"
R="${R%/}"

# --- JSON helpers ---------------------------------------------------------------------------

# Escape stdin as the inside of a JSON string (no surrounding quotes).  Every line of input is
# joined with \n; the caller decides about the final newline.
_jesc() {
    awk '
    BEGIN {
        ORS = ""
        for (i = 1; i < 32; i++) esc[sprintf("%c", i)] = sprintf("\\u%04x", i)
        esc["\t"] = "\\t"; esc["\r"] = "\\r"; esc["\b"] = "\\b"; esc["\f"] = "\\f"
        esc["\\"] = "\\\\"; esc["\""] = "\\\""
    }
    {
        if (NR > 1) print "\\n"
        s = $0
        if (index(s, "\\") == 0 && index(s, "\"") == 0 && s !~ /[[:cntrl:]]/) { print s; next }
        n = length(s)
        for (i = 1; i <= n; i++) {
            c = substr(s, i, 1)
            if (c in esc) print esc[c]; else print c
        }
    }'
}

# A JSON string from an argument.
jstr() {
    printf '"'
    printf '%s' "$1" | _jesc
    printf '"'
}

# The path under ROOT for an absolute path, following one absolute symlink inside ROOT.
rp() {
    _p="$R$1"
    if [ -n "$R" ] && [ -L "$_p" ]; then
        _t=$(readlink "$_p" 2>/dev/null)
        case "$_t" in /*) _p="$R$_t" ;; esac
    fi
    printf '%s' "$_p"
}

# A file's value (trailing newlines removed) as a JSON string, or null.
jval() {
    _f=$(rp "$1")
    if [ -f "$_f" ] && [ -r "$_f" ]; then
        jstr "$(tr -d '\000' <"$_f" 2>/dev/null)"
    else
        printf 'null'
    fi
}

# A file's exact content as a JSON string.
jfile() {
    printf '"'
    if [ -s "$1" ]; then
        _jesc <"$1"
        if [ -z "$(tail -c 1 "$1")" ]; then printf '\\n'; fi
    fi
    printf '"'
}

jbool() { if "$@"; then printf 'true'; else printf 'false'; fi; }
exists() { [ -e "$(rp "$1")" ] || [ -L "$(rp "$1")" ]; }

# A number or null.
jnum() {
    case "$1" in
    '' | *[!0-9]*) printf 'null' ;;
    *) printf '%s' "$1" ;;
    esac
}

# --- facts ----------------------------------------------------------------------------------

arch() {
    _a=$(cat "$(rp /proc/sys/kernel/arch)" 2>/dev/null)
    [ -n "$_a" ] || _a=$(uname -m 2>/dev/null)
    printf '%s' "$_a"
}

sysctls() {
    _first=1
    printf '{'
    for _n in hardlockup_panic hung_task_panic hung_task_timeout_secs nmi_watchdog panic \
        panic_on_io_nmi panic_on_oops panic_on_unrecovered_nmi panic_on_warn softlockup_panic \
        sysrq unknown_nmi_panic; do
        [ $_first = 1 ] || printf ', '
        _first=0
        jstr "kernel.$_n"
        printf ': '
        jval "/proc/sys/kernel/$_n"
    done
    printf ', "vm.panic_on_oom": '
    jval /proc/sys/vm/panic_on_oom
    printf '}'
}

# Config files: their exact content, keyed by absolute path, in C-locale order.
config_files() {
    _first=1
    printf '{'
    for _g in /boot/grub/grub.conf /etc/debian_version /etc/default/grub \
        "/etc/default/grub.d/*.cfg" /etc/default/kdump-tools /etc/kdump.conf /etc/os-release \
        /etc/redhat-release /etc/sysconfig/kdump /etc/sysctl.conf "/etc/sysctl.d/*.conf" \
        /etc/system-release /usr/lib/os-release "/usr/lib/sysctl.d/*.conf"; do
        for _f in "$R"$_g; do
            _a="${_f#"$R"}"
            _p=$(rp "$_a")
            [ -f "$_p" ] && [ -r "$_p" ] || continue
            [ $_first = 1 ] || printf ', '
            _first=0
            jstr "$_a"
            printf ': '
            jfile "$_p"
        done
    done
    printf '}'
}

dmi() {
    _first=1
    printf '{'
    for _n in bios_vendor board_asset_tag board_vendor chassis_asset_tag chassis_vendor \
        product_name product_version sys_vendor; do
        [ $_first = 1 ] || printf ', '
        _first=0
        jstr "$_n"
        printf ': '
        jval "/sys/class/dmi/id/$_n"
    done
    printf '}'
}

# "Crash kernel" ranges from /proc/iomem.
iomem_crash() {
    _first=1
    printf '['
    _f=$(rp /proc/iomem)
    if [ -r "$_f" ]; then
        for _r in $(awk -F' : ' '$2 == "Crash kernel" { gsub(/ /, "", $1); print $1 }' "$_f"); do
            [ $_first = 1 ] || printf ', '
            _first=0
            jstr "$_r"
        done
    fi
    printf ']'
}

# Names of loaded Hyper-V modules (hv_*, *hyperv*), in /proc/modules order.
hv_modules() {
    _first=1
    printf '['
    _f=$(rp /proc/modules)
    if [ -r "$_f" ]; then
        for _m in $(awk '$1 ~ /^hv_/ || $1 ~ /hyperv/ { print $1 }' "$_f"); do
            [ $_first = 1 ] || printf ', '
            _first=0
            jstr "$_m"
        done
    fi
    printf ']'
}

cpuinfo_hypervisor() {
    _f=$(rp /proc/cpuinfo)
    [ -r "$_f" ] && grep '^flags' "$_f" | grep -qw hypervisor
}

cpus() {
    _f=$(rp /proc/cpuinfo)
    [ -r "$_f" ] || return 0
    grep -c '^processor' "$_f"
}

meminfo() {
    _f=$(rp /proc/meminfo)
    [ -r "$_f" ] || return 0
    awk -v k="$1:" '$1 == k { print $2; exit }' "$_f"
}

# The kdump service: name, installed, enabled (systemd wants links or SysV rc links) and, on
# the live system only, systemd's active state.
service() {
    _name=
    for _s in kdump kdump-tools; do
        for _d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
            if exists "$_d/$_s.service"; then _name=$_s; break 2; fi
        done
        if exists "/etc/init.d/$_s" || exists "/etc/rc.d/init.d/$_s"; then _name=$_s; break; fi
    done
    printf '{"name": '
    if [ -z "$_name" ]; then
        printf 'null, "enabled": false, "active": null}'
        return
    fi
    jstr "$_name"
    _en=false
    for _l in "$R"/etc/systemd/system/*.wants/"$_name".service "$R"/etc/rc[2345].d/S*"$_name" \
        "$R"/etc/rc.d/rc[2345].d/S*"$_name"; do
        if [ -e "$_l" ] || [ -L "$_l" ]; then _en=true; break; fi
    done
    printf ', "enabled": %s, "active": ' "$_en"
    if [ -z "$R" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        jstr "$(systemctl is-active "$_name.service" 2>/dev/null)"
    else
        printf 'null'
    fi
    printf '}'
}

# Strip quotes from a shell-style value.
unquote() { sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\\(.*\\)'\$/\\1/"; }

# The dump directory and its remote target type, from whichever kdump config exists.
dump_target() {
    _path=/var/crash
    _remote=
    _kc=$(rp /etc/kdump.conf)
    _kt=$(rp /etc/default/kdump-tools)
    _sk=$(rp /etc/sysconfig/kdump)
    if [ -r "$_kc" ]; then
        _v=$(awk '$1 == "path" { p = $2 } END { print p }' "$_kc")
        [ -z "$_v" ] || _path=$_v
        _remote=$(awk '$1 == "nfs" || $1 == "ssh" || $1 == "raw" || $1 == "net" { r = $1 } END { print r }' "$_kc")
    elif [ -r "$_kt" ]; then
        _v=$(sed -n 's/^[[:space:]]*KDUMP_COREDIR=//p' "$_kt" | tail -n 1 | unquote)
        [ -z "$_v" ] || _path=$_v
        _remote=$(awk -F= '/^[[:space:]]*(NFS|SSH|FTP)=/ && $2 !~ /^["'"'"']*$/ { sub(/^[[:space:]]*/, "", $1); r = tolower($1) } END { print r }' "$_kt")
    elif [ -r "$_sk" ]; then
        _v=$(sed -n 's/^[[:space:]]*KDUMP_SAVEDIR=//p' "$_sk" | tail -n 1 | unquote)
        case "$_v" in
        file://*) _path=${_v#file://} ;;
        /*) _path=$_v ;;
        '') ;;
        *) _remote=${_v%%://*} ;;
        esac
    fi
    _probe=$_path
    while [ -n "$_probe" ] && [ "$_probe" != / ] && [ ! -d "$R$_probe" ]; do
        _probe=${_probe%/*}
    done
    [ -n "$_probe" ] || _probe=/
    _free=$(df -Pk "$R$_probe" 2>/dev/null | awk 'NR == 2 { print $4 }')
    _size=$(df -Pk "$R$_probe" 2>/dev/null | awk 'NR == 2 { print $2 }')
    printf '{"path": '
    jstr "$_path"
    printf ', "probe": '
    jstr "$_probe"
    printf ', "remote": '
    if [ -n "$_remote" ]; then jstr "$_remote"; else printf 'null'; fi
    printf ', "free_kb": %s, "size_kb": %s}' "$(jnum "$_free")" "$(jnum "$_size")"
}

tools() {
    _first=1
    printf '{'
    for _t in crash kdump-config kdumpctl kexec makedumpfile; do
        _found=false
        for _d in /usr/sbin /sbin /usr/bin /bin; do
            if [ -x "$(rp "$_d/$_t")" ]; then _found=true; break; fi
        done
        [ $_first = 1 ] || printf ', '
        _first=0
        printf '"%s": %s' "$_t" "$_found"
    done
    printf '}'
}

# Whether /proc/kallsyms lists _text (arm64 kexec -p looks it up): present (with an address),
# missing (_stext has an address, _text is not listed), unknown (addresses read as 0: not
# root, or kptr_restrict), or null when there is no readable kallsyms.
kallsyms_text() {
    _f=$(rp /proc/kallsyms)
    if [ -f "$_f" ] && [ -r "$_f" ]; then
        jstr "$(awk '
            NF >= 3 && ($3 == "_text" || $3 == "_stext") && $1 ~ /[1-9a-fA-F]/ { seen[$3] = 1 }
            END {
                if ("_text" in seen) print "present"
                else if ("_stext" in seen) print "missing"
                else print "unknown"
            }' "$_f" 2>/dev/null)"
    else
        printf 'null'
    fi
}

xen_dir() { [ -d "$(rp /proc/xen)" ]; }
vmbus_dir() { [ -d "$(rp /sys/bus/vmbus)" ]; }
efi_dir() { [ -d "$(rp /sys/firmware/efi)" ]; }

printf '{"schema": 1'
printf ', "kernel_release": '
jval /proc/sys/kernel/osrelease
printf ', "arch": '
jstr "$(arch)"
printf ', "cmdline": '
jval /proc/cmdline
printf ', "kexec_crash_loaded": '
jval /sys/kernel/kexec_crash_loaded
printf ', "kexec_crash_size": '
jval /sys/kernel/kexec_crash_size
printf ', "fadump_registered": '
jval /sys/kernel/fadump_registered
printf ', "fadump_mem_reserved": '
jval /sys/kernel/fadump/mem_reserved
printf ', "iomem_crash_kernel": '
iomem_crash
printf ', "sysctl": '
sysctls
printf ', "service": '
service
printf ', "files": '
config_files
printf ', "dmi": '
dmi
printf ', "hypervisor": {"sys_type": '
jval /sys/hypervisor/type
printf ', "sys_uuid": '
jval /sys/hypervisor/uuid
printf ', "proc_xen": %s' "$(jbool xen_dir)"
printf ', "xen_capabilities": '
jval /proc/xen/capabilities
printf ', "cpuinfo_flag": %s' "$(jbool cpuinfo_hypervisor)"
printf ', "vmbus": %s' "$(jbool vmbus_dir)"
printf ', "device_tree": '
jval /proc/device-tree/hypervisor/compatible
printf '}'
printf ', "hv_modules": '
hv_modules
printf ', "efi": %s' "$(jbool efi_dir)"
printf ', "mem_total_kb": %s' "$(jnum "$(meminfo MemTotal)")"
printf ', "swap_total_kb": %s' "$(jnum "$(meminfo SwapTotal)")"
printf ', "cpus": %s' "$(jnum "$(cpus)")"
printf ', "dump_target": '
dump_target
printf ', "tools": '
tools
printf ', "kallsyms_text": '
kallsyms_text
printf '}\n'
