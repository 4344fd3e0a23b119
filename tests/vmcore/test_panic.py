# ruff: noqa: E501, W291  (kernel log excerpts are pasted verbatim, trailing blanks included)
"""Panic classification and crash signatures, on real and realistic kernel log excerpts.

The NMI, sysrq and NULL-dereference excerpts are copied from the fixture dumps'
``makedumpfile-dmesg.txt``; the others are written after the exact printk formats of the
kernel sources named in kdiag.vmcore.panic.
"""

from __future__ import annotations

import json
import re

import pytest

from kdiag.vmcore.panic import CLASSES, classify, normalize_frame, signature_id, strip_prefix

# --- real excerpts (fixtures) ------------------------------------------------------------------

NMI = """\
[    2.410480]     lab_hostname=fixture-nmi
[    4.132803] Uhhuh. NMI received for unknown reason 21 on CPU 0.
[    4.132803] Kernel panic - not syncing: NMI: Not continuing
[    4.132803] CPU: 0 PID: 0 Comm: swapper/0 Kdump: loaded Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[    4.132803] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    4.132803] Call Trace:
[    4.132803]  <NMI>
[    4.132803]  dump_stack_lvl+0x44/0x5c
[    4.132803]  panic+0x118/0x2f4
[    4.132803]  ? _printk+0x68/0x83
[    4.132803]  nmi_panic.cold+0xc/0xc
[    4.132803]  unknown_nmi_error.cold+0x3b/0x49
[    4.132803]  exc_nmi+0x11e/0x150
[    4.132803]  end_repeat_nmi+0x16/0x67
[    4.132803] RIP: 0010:native_safe_halt+0xb/0x10
[    4.132803] Code: 7f c3 cc cc cc cc 65 48 8b 04 25 80 fb 01 00 f0 80 48 02 20 48 8b 00 a8 08 75 c0 eb 88 cc cc eb 07 0f 00 2d 09 05 5b 00 fb f4 <c3> cc cc cc cc eb 07 0f 00 2d f9 04 5b 00 f4 c3 cc cc cc cc cc 0f
[    4.132803] RSP: 0018:ffffffff85003e98 EFLAGS: 00000246
[    4.132803] RAX: 000000000001ad40 RBX: 0000000000000000 RCX: 0000000000000000
[    4.132803] RDX: 4000000000000000 RSI: 0000000000000083 RDI: 0000000000002314
[    4.132803] RBP: ffffffff8501aa40 R08: 0000000000000000 R09: 00000000314dd33f
[    4.132803] R10: 00000000fffffffb R11: 0000000000000001 R12: 0000000000000000
[    4.132803] R13: 0000000000000000 R14: ffffffff8501a120 R15: 0000000000014790
[    4.132803]  ? native_safe_halt+0xb/0x10
[    4.132803]  ? native_safe_halt+0xb/0x10
[    4.132803]  </NMI>
[    4.132803]  <TASK>
[    4.132803]  amd_e400_idle+0x3d/0x50
[    4.132803]  default_idle_call+0x38/0xf0
[    4.132803]  do_idle+0x206/0x2b0
[    4.132803]  cpu_startup_entry+0x26/0x30
[    4.132803]  rest_init+0xca/0xd0
[    4.132803]  arch_call_rest_init+0xa/0x14
[    4.132803]  start_kernel+0x6fb/0x70f
[    4.132803]  secondary_startup_64_no_verify+0xe5/0xeb
[    4.132803]  </TASK>
"""

SYSRQ = """\
[    2.737369]     lab_trigger=sysrq
[    7.213829] sysrq: Trigger a crash
[    7.214183] Kernel panic - not syncing: sysrq triggered crash
[    7.214453] CPU: 1 PID: 153 Comm: sh Kdump: loaded Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[    7.214787] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    7.215116] Call Trace:
[    7.215792]  <TASK>
[    7.216201]  dump_stack_lvl+0x44/0x5c
[    7.216575]  panic+0x118/0x2f4
[    7.216666]  ? _printk+0x68/0x83
[    7.216755]  sysrq_handle_crash+0x16/0x20
[    7.216875]  __handle_sysrq.cold+0x44/0x11c
[    7.216978]  write_sysrq_trigger+0x24/0x40
[    7.217074]  proc_reg_write+0x56/0xa0
[    7.217196]  vfs_write+0xc7/0x3f0
[    7.217439]  ? __handle_mm_fault+0x660/0xfa0
[    7.217459]  ksys_write+0x6b/0xf0
[    7.217459]  do_syscall_64+0x5d/0xb0
[    7.217459]  ? handle_mm_fault+0xdb/0x2d0
[    7.217459]  ? do_user_addr_fault+0x1b0/0x570
[    7.217459]  ? exit_to_user_mode_prepare+0x44/0x240
[    7.217459]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[    7.217459] RIP: 0033:0x47b7a0
[    7.217459] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[    7.217459] RSP: 002b:00007ffdd25df628 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[    7.217459] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[    7.217459]  </TASK>
"""

NULL = """\
[    5.304633] crashme: loading out-of-tree module taints kernel.
[    5.305081] crashme: module verification failed: signature and/or required key missing - tainting kernel
[    7.362705] crashme: trigger 'null'
[    7.363876] BUG: kernel NULL pointer dereference, address: 0000000000000000
[    7.364143] #PF: supervisor write access in kernel mode
[    7.364349] #PF: error_code(0x0002) - not-present page
[    7.364536] PGD 13dfe067 P4D 25cd067 PUD 11803067 PMD 0 
[    7.364927] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    7.365182] CPU: 0 PID: 155 Comm: sh Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[    7.365558] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    7.365899] RIP: 0010:crashme_write+0xb9/0x198 [crashme]
[    7.366397] Code: ca 48 c7 c7 80 a0 21 c0 48 89 e6 e8 8e ed 5e ca 48 c7 c6 99 a0 21 c0 48 89 e7 e8 d2 37 5d ca 85 c0 75 17 48 8b 05 f7 22 00 00 <c7> 00 42 00 00 00 48 89 d8 eb a3 e8 17 f6 62 ca 48 c7 c6 9e a0 21
[    7.367078] RSP: 0018:ff46e52600413dc8 EFLAGS: 00000246
[    7.367237] RAX: 0000000000000000 RBX: 0000000000000005 RCX: c0000000ffffefff
[    7.367237] RDX: 0000000000000000 RSI: ffffffffc021a099 RDI: ff46e52600413dc8
[    7.367237] CR2: 0000000000000000 CR3: 00000000123f0000 CR4: 0000000000751ef0
[    7.367237] PKRU: 55555554
[    7.367237] Call Trace:
[    7.367237]  <TASK>
[    7.367237]  proc_reg_write+0x56/0xa0
[    7.367237]  vfs_write+0xc7/0x3f0
[    7.367237]  ksys_write+0x6b/0xf0
[    7.367237]  do_syscall_64+0x5d/0xb0
[    7.367237]  ? exit_to_user_mode_prepare+0x44/0x240
[    7.367237]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[    7.367237] RIP: 0033:0x47b7a0
[    7.367237] RSP: 002b:00007ffc22c98998 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[    7.367237]  </TASK>
[    7.367237] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[    7.367237] CR2: 0000000000000000
"""

# --- realistic excerpts for the other classes ------------------------------------------------

SOFT_LOCKUP = """\
[   48.200301] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:161]
[   48.200512] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[   48.200660] CPU: 0 PID: 161 Comm: sh Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   48.200874] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   48.201012] RIP: 0010:crashme_spin+0x12/0x20 [crashme]
[   48.201200] Code: 90 90 90 90 0f 1f 44 00 00 eb fe 66 0f 1f 44 00 00 <eb> fe 0f 1f 40 00 0f 1f 44 00 00 48 c7 c7 80
[   48.201351] RSP: 0018:ffffb3a040413dc0 EFLAGS: 00000202
[   48.201470] RAX: 0000000000000000 RBX: 0000000000000005 RCX: 0000000000000000
[   48.201612] Call Trace:
[   48.201670]  <TASK>
[   48.201713]  crashme_write+0x150/0x198 [crashme]
[   48.201800]  proc_reg_write+0x56/0xa0
[   48.201888]  vfs_write+0xc7/0x3f0
[   48.201961]  ksys_write+0x6b/0xf0
[   48.202040]  do_syscall_64+0x5d/0xb0
[   48.202120]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   48.202300]  </TASK>
[   48.202400] Kernel panic - not syncing: softlockup: hung tasks
[   48.202500] CPU: 0 PID: 161 Comm: sh Kdump: loaded Tainted: G           OEL     6.1.0-56-amd64 #1  Debian 6.1.192-2
[   48.202600] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   48.202700] Call Trace:
[   48.202710]  <IRQ>
[   48.202720]  dump_stack_lvl+0x44/0x5c
[   48.202730]  panic+0x118/0x2f4
[   48.202740]  watchdog_timer_fn.cold+0x18/0x18
[   48.202750]  __hrtimer_run_queues+0x112/0x2b0
[   48.202760]  hrtimer_interrupt+0xfe/0x220
[   48.202770]  __sysvec_apic_timer_interrupt+0x7f/0x170
[   48.202780]  sysvec_apic_timer_interrupt+0x99/0xc0
[   48.202790]  </IRQ>
"""

HARD_LOCKUP = """\
[  120.400100] watchdog: Watchdog detected hard LOCKUP on cpu 1
[  120.400110] Modules linked in: crashme(OE)
[  120.400120] CPU: 1 PID: 402 Comm: spinner Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[  120.400130] Hardware name: Dell Inc. PowerEdge R640/0W23H8, BIOS 2.11.2 004/21/2021
[  120.400140] RIP: 0010:native_queued_spin_lock_slowpath+0x6a/0x1e0
[  120.400150] RSP: 0018:ffffa98a80e4bd60 EFLAGS: 00000002
[  120.400160] Call Trace:
[  120.400170]  <TASK>
[  120.400180]  _raw_spin_lock_irqsave+0x3d/0x50
[  120.400190]  crashme_irqs_off+0x20/0x40 [crashme]
[  120.400200]  proc_reg_write+0x56/0xa0
[  120.400210]  vfs_write+0xc7/0x3f0
[  120.400220]  </TASK>
[  120.400230] Kernel panic - not syncing: Hard LOCKUP
[  120.400240] CPU: 1 PID: 402 Comm: spinner Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[  120.400250] Call Trace:
[  120.400260]  <NMI>
[  120.400270]  dump_stack_lvl+0x44/0x5c
[  120.400280]  panic+0x118/0x2f4
[  120.400290]  nmi_panic.cold+0xc/0xc
[  120.400300]  watchdog_overflow_callback.cold+0x5c/0x70
[  120.400310]  __perf_event_overflow+0x57/0x100
[  120.400320]  </NMI>
"""

HUNG_TASK = """\
[  243.112233] INFO: task sh:155 blocked for more than 120 seconds.
[  243.112300]       Tainted: G           OE      6.1.0-56-amd64 #1 Debian 6.1.192-2
[  243.112400] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[  243.112500] task:sh              state:D stack:0     pid:155   ppid:1      flags:0x00004002
[  243.112600] Call Trace:
[  243.112610]  <TASK>
[  243.112620]  __schedule+0x351/0xa20
[  243.112630]  schedule+0x5d/0xe0
[  243.112640]  schedule_timeout+0x118/0x150
[  243.112650]  crashme_hang+0x1a/0x30 [crashme]
[  243.112660]  crashme_write+0x160/0x198 [crashme]
[  243.112670]  proc_reg_write+0x56/0xa0
[  243.112680]  vfs_write+0xc7/0x3f0
[  243.112690]  ksys_write+0x6b/0xf0
[  243.112700]  do_syscall_64+0x5d/0xb0
[  243.112710]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[  243.112720]  </TASK>
[  243.112800] Kernel panic - not syncing: hung_task: blocked tasks
[  243.112810] CPU: 1 PID: 32 Comm: khungtaskd Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[  243.112820] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[  243.112830] Call Trace:
[  243.112840]  <TASK>
[  243.112850]  dump_stack_lvl+0x44/0x5c
[  243.112860]  panic+0x118/0x2f4
[  243.112870]  watchdog.cold+0x86/0xbb
[  243.112880]  kthread+0xd7/0x100
[  243.112890]  ret_from_fork+0x22/0x30
[  243.112900]  </TASK>
"""

RCU_STALL = """\
[   70.011000] rcu: INFO: rcu_preempt self-detected stall on CPU
[   70.011010] rcu: \t1-....: (5250 ticks this GP) idle=b0c/1/0x4000000000000000 softirq=1620/1620 fqs=2490
[   70.011020] \t(t=5251 jiffies g=2657 q=12 ncpus=2)
[   70.011030] NMI backtrace for cpu 1
[   70.011040] CPU: 1 PID: 170 Comm: sh Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   70.011050] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   70.011060] Call Trace:
[   70.011070]  <IRQ>
[   70.011080]  dump_stack_lvl+0x44/0x5c
[   70.011090]  nmi_cpu_backtrace.cold+0x30/0x70
[   70.011100]  nmi_trigger_cpumask_backtrace+0xf2/0x110
[   70.011110]  rcu_dump_cpu_stacks+0xfc/0x140
[   70.011120]  rcu_sched_clock_irq.cold+0x6c/0x2b7
[   70.011130]  update_process_times+0x8c/0xc0
[   70.011140]  tick_sched_handle+0x22/0x60
[   70.011150]  tick_sched_timer+0x7a/0x90
[   70.011160]  __hrtimer_run_queues+0x112/0x2b0
[   70.011170]  hrtimer_interrupt+0xfe/0x220
[   70.011180]  __sysvec_apic_timer_interrupt+0x7f/0x170
[   70.011190]  sysvec_apic_timer_interrupt+0x99/0xc0
[   70.011200]  </IRQ>
[   70.011210]  <TASK>
[   70.011220]  asm_sysvec_apic_timer_interrupt+0x16/0x20
[   70.011230] RIP: 0010:crashme_rcu_spin+0x10/0x20 [crashme]
[   70.011240] Code: 0f 1f 44 00 00 eb fe 66 90
[   70.011250] RSP: 0018:ffffb3a040433dc0 EFLAGS: 00000246
[   70.011260]  crashme_write+0x170/0x198 [crashme]
[   70.011270]  proc_reg_write+0x56/0xa0
[   70.011280]  vfs_write+0xc7/0x3f0
[   70.011290]  </TASK>
[   70.011300] Kernel panic - not syncing: RCU Stall
"""

OOM = """\
[  301.000100] stress invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0
[  301.000200] Mem-Info:
[  301.000300] Out of memory: Killed process 812 (stress) total-vm:1052408kB, anon-rss:987652kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:1980kB oom_score_adj:0
[  301.100100] Kernel panic - not syncing: System is deadlocked on memory
[  301.100200] CPU: 0 PID: 813 Comm: stress Kdump: loaded Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[  301.100300] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[  301.100400] Call Trace:
[  301.100410]  <TASK>
[  301.100420]  dump_stack_lvl+0x44/0x5c
[  301.100430]  panic+0x118/0x2f4
[  301.100440]  out_of_memory.cold+0x2f/0x7e
[  301.100450]  __alloc_pages_slowpath.constprop.0+0xc6e/0xe40
[  301.100460]  __alloc_pages+0x305/0x330
[  301.100470]  </TASK>
"""

MCE = """\
[ 9001.223344] mce: [Hardware Error]: CPU 3: Machine Check Exception: 5 Bank 4: be00000000800400
[ 9001.223350] mce: [Hardware Error]: RIP 10:<ffffffff8b2a1c3e> {intel_idle+0x7e/0x120}
[ 9001.223360] mce: [Hardware Error]: TSC 1a2b3c4d5e ADDR 3ffe21c0 MISC 0
[ 9001.223370] mce: [Hardware Error]: PROCESSOR 0:50654 TIME 1763791426 SOCKET 0 APIC 6 microcode 2006e05
[ 9001.223380] mce: [Hardware Error]: Run the above through 'mcelog --ascii'
[ 9001.223390] mce: [Hardware Error]: Machine check: Processor context corrupt
[ 9001.223400] Kernel panic - not syncing: Fatal machine check
"""

INIT_EXIT = """\
[    1.912345] Run /init as init process
[    1.998877] init[1]: segfault at 0 ip 0000000000401136 sp 00007ffc9d1e0ac0 error 6 in init[401000+1000]
[    2.001122] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b
[    2.001200] CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[    2.001300] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    2.001400] Call Trace:
[    2.001410]  <TASK>
[    2.001420]  dump_stack_lvl+0x44/0x5c
[    2.001430]  panic+0x118/0x2f4
[    2.001440]  do_exit.cold+0x15/0xa0
[    2.001450]  do_group_exit+0x2d/0x80
[    2.001460]  get_signal+0x90c/0x940
[    2.001470]  </TASK>
"""

NO_ROOTFS = """\
[    1.700000] List of all partitions:
[    1.700100] No filesystem could mount root, tried:
[    1.700200]
[    1.700300] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)
[    1.700400] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[    1.700500] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    1.700600] Call Trace:
[    1.700610]  <TASK>
[    1.700620]  dump_stack_lvl+0x44/0x5c
[    1.700630]  panic+0x118/0x2f4
[    1.700640]  mount_block_root+0x2dd/0x2f0
[    1.700650]  prepare_namespace+0x136/0x165
[    1.700660]  kernel_init_freeable+0x25c/0x286
[    1.700670]  kernel_init+0x16/0x130
[    1.700680]  ret_from_fork+0x22/0x30
[    1.700690]  </TASK>
"""

BUG = """\
[  512.100000] ------------[ cut here ]------------
[  512.100100] kernel BUG at mm/slub.c:123!
[  512.100200] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[  512.100300] CPU: 1 PID: 2231 Comm: kworker/1:2 Kdump: loaded Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[  512.100400] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[  512.100500] Workqueue: events free_work
[  512.100600] RIP: 0010:__slab_free+0x2c3/0x3a0
[  512.100700] RSP: 0018:ffffb3a0404dbd48 EFLAGS: 00010246
[  512.100800] Call Trace:
[  512.100810]  <TASK>
[  512.100820]  ? __die_body.cold+0x1a/0x1f
[  512.100830]  ? die+0x2a/0x50
[  512.100840]  kmem_cache_free+0x2b9/0x2f0
[  512.100850]  free_work+0x25/0x40
[  512.100860]  process_one_work+0x1c7/0x380
[  512.100870]  worker_thread+0x4d/0x380
[  512.100880]  kthread+0xd7/0x100
[  512.100890]  ret_from_fork+0x22/0x30
[  512.100900]  </TASK>
[  512.101000] ---[ end trace 0000000000000000 ]---
"""

GPF = """\
[   33.000100] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI
[   33.000200] CPU: 1 PID: 177 Comm: sh Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   33.000300] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   33.000400] RIP: 0010:crashme_write+0xd2/0x198 [crashme]
[   33.000500] RSP: 0018:ff46e52600423dc8 EFLAGS: 00010246
[   33.000600] Call Trace:
[   33.000610]  <TASK>
[   33.000620]  ? die_addr+0x32/0x80
[   33.000630]  ? exc_general_protection+0x1c5/0x410
[   33.000640]  ? asm_exc_general_protection+0x22/0x30
[   33.000650]  proc_reg_write+0x56/0xa0
[   33.000660]  vfs_write+0xc7/0x3f0
[   33.000670]  ksys_write+0x6b/0xf0
[   33.000680]  do_syscall_64+0x5d/0xb0
[   33.000690]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   33.000700]  </TASK>
[   33.000800] Modules linked in: crashme(OE)
[   33.000900] ---[ end trace 0000000000000000 ]---
[   33.001000] Kernel panic - not syncing: Fatal exception
"""

WARN = """\
[   21.000100] ------------[ cut here ]------------
[   21.000200] crashme: warning requested
[   21.000300] WARNING: CPU: 1 PID: 1 at drivers/misc/crashme.c:42 crashme_write+0x120/0x198 [crashme]
[   21.000400] Modules linked in: crashme(OE)
[   21.000500] CPU: 1 PID: 1 Comm: swapper/0 Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   21.000600] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   21.000700] Kernel panic - not syncing: kernel: panic_on_warn set ...
[   21.000800] CPU: 1 PID: 1 Comm: swapper/0 Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   21.000900] Call Trace:
[   21.000910]  <TASK>
[   21.000920]  dump_stack_lvl+0x44/0x5c
[   21.000930]  panic+0x118/0x2f4
[   21.000940]  check_panic_on_warn.cold+0x13/0x13
[   21.000950]  __warn+0x7e/0xc0
[   21.000960]  report_bug+0xe6/0x170
[   21.000970]  handle_bug+0x3c/0x80
[   21.000980]  exc_invalid_op+0x13/0x60
[   21.000990]  asm_exc_invalid_op+0x16/0x20
[   21.001000] RIP: 0010:crashme_write+0x120/0x198 [crashme]
[   21.001010]  proc_reg_write+0x56/0xa0
[   21.001020]  </TASK>
"""

PAGE_FAULT = """\
[  640.400100] BUG: unable to handle page fault for address: ffffc90000a3f000
[  640.400200] #PF: supervisor read access in kernel mode
[  640.400300] #PF: error_code(0x0000) - not-present page
[  640.400400] PGD 100000067 P4D 100000067 PUD 1001b5067 PMD 10ad7a067 PTE 0
[  640.400500] Oops: 0000 [#1] PREEMPT SMP NOPTI
[  640.400600] CPU: 0 PID: 911 Comm: cat Kdump: loaded Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[  640.400700] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[  640.400800] RIP: 0010:memcpy_orig+0x31/0x140
[  640.400900] Call Trace:
[  640.400910]  <TASK>
[  640.400920]  seq_read_iter+0x12a/0x470
[  640.400930]  vfs_read+0x1a4/0x2d0
[  640.400940]  ksys_read+0x6b/0xf0
[  640.400950]  do_syscall_64+0x5d/0xb0
[  640.400960]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[  640.400970]  </TASK>
"""

PANIC_OTHER = """\
[   88.100000] Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: do_sys_poll+0x4e2/0x4f0
[   88.100100] CPU: 0 PID: 77 Comm: poller Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[   88.100200] Call Trace:
[   88.100210]  <TASK>
[   88.100220]  dump_stack_lvl+0x44/0x5c
[   88.100230]  panic+0x118/0x2f4
[   88.100240]  __stack_chk_fail+0x10/0x10
[   88.100250]  do_sys_poll+0x4e2/0x4f0
[   88.100260]  </TASK>
"""

CASES: dict[str, tuple[str, str, int | None, int | None, str | None]] = {
    # name: (log, class, cpu, pid, comm)
    "nmi": (NMI, "nmi", 0, 0, "swapper/0"),
    "sysrq": (SYSRQ, "sysrq", 1, 153, "sh"),
    "null-deref": (NULL, "null-deref", 0, 155, "sh"),
    "soft-lockup": (SOFT_LOCKUP, "soft-lockup", 0, 161, "sh"),
    "hard-lockup": (HARD_LOCKUP, "hard-lockup", 1, 402, "spinner"),
    "hung-task": (HUNG_TASK, "hung-task", 1, 32, "khungtaskd"),
    "rcu-stall": (RCU_STALL, "rcu-stall", 1, 170, "sh"),
    "oom": (OOM, "oom", 0, 813, "stress"),
    "mce": (MCE, "mce", None, None, None),
    "init-exit": (INIT_EXIT, "init-exit", 1, 1, "init"),
    "no-rootfs": (NO_ROOTFS, "no-rootfs", 0, 1, "swapper/0"),
    "bug": (BUG, "bug", 1, 2231, "kworker/1:2"),
    "gpf": (GPF, "gpf", 1, 177, "sh"),
    "warn": (WARN, "warn", 1, 1, "swapper/0"),
    "page-fault": (PAGE_FAULT, "page-fault", 0, 911, "cat"),
    "panic": (PANIC_OTHER, "panic", 0, 77, "poller"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_class_and_panic_cpu(name: str) -> None:
    log, klass, cpu, pid, comm = CASES[name]
    info = classify(log.splitlines())
    assert info.klass == klass
    assert (info.cpu, info.pid, info.comm) == (cpu, pid, comm)
    assert info.klass in CLASSES
    assert info.signature.startswith(f"{klass}: ")


def test_every_class_but_unknown_is_exercised() -> None:
    covered = {case[1] for case in CASES.values()}
    assert covered | {"unknown"} == set(CLASSES)


def test_unknown_without_any_report() -> None:
    info = classify(
        ["[    0.000000] Linux version 6.1.0-56-amd64", "[    1.0] Run /init as init process"]
    )
    assert info.klass == "unknown"
    assert info.message is None
    assert info.panic_line is None
    # nothing recognizable is no signature: two such dumps must never group together
    assert info.signature is None
    assert info.signature_id is None
    empty = classify([])
    assert (empty.klass, empty.signature, empty.signature_id) == ("unknown", None, None)


EXPECTED_SIGNATURES = {
    "nmi": "nmi: Kernel panic - not syncing: NMI: Not continuing | unknown_nmi_error",
    "sysrq": "sysrq: Kernel panic - not syncing: sysrq triggered crash"
    " | sysrq_handle_crash < __handle_sysrq < write_sysrq_trigger",
    "null-deref": "null-deref: BUG: kernel NULL pointer dereference"
    " | crashme_write < proc_reg_write < vfs_write",
    "soft-lockup": "soft-lockup: BUG: soft lockup | crashme_spin < crashme_write < proc_reg_write",
    "hard-lockup": "hard-lockup: watchdog: hard LOCKUP"
    " | native_queued_spin_lock_slowpath < _raw_spin_lock_irqsave < crashme_irqs_off",
    "hung-task": "hung-task: INFO: task hung | crashme_hang < crashme_write < proc_reg_write",
    "rcu-stall": "rcu-stall: INFO: rcu detected stall | crashme_rcu_spin < crashme_write < proc_reg_write",
    "oom": "oom: Kernel panic - not syncing: System is deadlocked on memory"
    " | out_of_memory < __alloc_pages_slowpath < __alloc_pages",
    "mce": "mce: Kernel panic - not syncing: Fatal machine check",
    "init-exit": "init-exit: Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"
    " | do_exit < do_group_exit < get_signal",
    "no-rootfs": "no-rootfs: Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"
    " | mount_block_root < prepare_namespace < kernel_init_freeable",
    "bug": "bug: kernel BUG at mm/slub.c | __slab_free < kmem_cache_free < free_work",
    "gpf": "gpf: general protection fault | crashme_write < proc_reg_write < vfs_write",
    # check_panic_on_warn() is panic_on_warn plumbing (v6.2, in 6.1.y too), never the bug
    "warn": "warn: WARNING at drivers/misc/crashme.c | crashme_write < proc_reg_write",
    "page-fault": "page-fault: BUG: unable to handle page fault | memcpy_orig < seq_read_iter < vfs_read",
    "panic": "panic: Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in:"
    " do_sys_poll | __stack_chk_fail < do_sys_poll",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_signature(name: str) -> None:
    info = classify(CASES[name][0].splitlines())
    assert info.signature == EXPECTED_SIGNATURES[name]
    assert re.fullmatch(r"[0-9a-f]{16}", info.signature_id)


def _perturb(log: str, seed: int) -> str:
    """The same crash on another boot: other timestamps, addresses, pids, CPU numbers."""
    out = []
    for n, original in enumerate(log.splitlines()):
        line = re.sub(
            r"^\[\s*(\d+)\.(\d+)\]",
            lambda m, n=n: (
                f"[{int(m.group(1)) + seed * 7:5d}.{(int(m.group(2)) + seed * 131 + n) % 10**6:06d}]"
            ),
            original,
        )
        line = re.sub(
            r"\b(ff[0-9a-f]{14})\b",
            lambda m: f"{(int(m.group(1), 16) + seed * 0x200000) & (2**64 - 1):016x}",
            line,
        )
        line = re.sub(r"PID: (\d+)", lambda m: f"PID: {int(m.group(1)) + seed}", line)
        line = re.sub(
            r"\[(\w+):(\d+)\]", lambda m: f"[{m.group(1)}:{int(m.group(2)) + seed}]", line
        )
        line = re.sub(
            r"task (\w+):(\d+)", lambda m: f"task {m.group(1)}:{int(m.group(2)) + seed}", line
        )
        line = re.sub(r"CPU#(\d)", lambda m: f"CPU#{(int(m.group(1)) + seed) % 4}", line)
        line = re.sub(r"stuck for (\d+)s", lambda m: f"stuck for {int(m.group(1)) + seed}s", line)
        line = re.sub(
            r"address: ([0-9a-f]{16})",
            lambda m: f"address: {int(m.group(1), 16) + seed * 4096:016x}",
            line,
        )
        line = re.sub(r"\b(?:Bank \d+: )?[0-9a-f]{16}\b", lambda m: f"{seed:016x}", line)
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [1, 5, 13])
def test_signature_stable_across_boots(name: str, seed: int) -> None:
    log = CASES[name][0]
    moved = _perturb(log, seed)
    assert moved != log
    first, second = classify(log.splitlines()), classify(moved.splitlines())
    assert second.signature == first.signature
    assert second.signature_id == first.signature_id
    assert second.klass == first.klass


def test_signatures_differ_between_bugs() -> None:
    sigs = {name: classify(case[0].splitlines()).signature for name, case in CASES.items()}
    assert len(set(sigs.values())) == len(sigs)
    # Same class, different code: a NULL dereference elsewhere is another bug.
    other = NULL.replace("crashme_write+0xb9/0x198 [crashme]", "ext4_fill_super+0x10/0x90")
    assert classify(other.splitlines()).signature != sigs["null-deref"]
    assert classify(other.splitlines()).klass == "null-deref"


def test_without_timestamps_or_with_caller_ids() -> None:
    bare = "\n".join(strip_prefix(line) for line in SYSRQ.splitlines())
    callers = re.sub(r"^(\[\s*\d+\.\d+\])", r"\1[  T153]", SYSRQ, flags=re.M)
    ref = classify(SYSRQ.splitlines())
    assert classify(bare.splitlines()).signature == ref.signature
    got = classify(callers.splitlines())
    assert (got.signature, got.pid, got.comm) == (ref.signature, 153, "sh")


def test_panic_message_and_crash_panic() -> None:
    nmi = classify(NMI.splitlines())
    assert nmi.panic_line == nmi.message == "Kernel panic - not syncing: NMI: Not continuing"
    assert nmi.crash_panic == '"Kernel panic - not syncing: NMI: Not continuing"'
    oops = classify(NULL.splitlines())
    assert oops.panic_line is None
    assert oops.message == "Oops: 0002 [#1] PREEMPT SMP NOPTI"
    assert oops.crash_panic == '"Oops: 0002 [#1] PREEMPT SMP NOPTI" (check log for details)'
    assert oops.report_line == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    bug = classify(BUG.splitlines())
    assert bug.crash_panic == '"kernel BUG at mm/slub.c:123!" (check log for details)'


def test_old_kernel_spellings() -> None:
    old_null = """\
<1>[  100.000000] BUG: unable to handle kernel NULL pointer dereference at 0000000000000008
<1>[  100.000100] IP: [<ffffffffa01b2034>] foo_ioctl+0x34/0x90 [foo]
<4>[  100.000200] Oops: 0002 [#1] SMP
<4>[  100.000300] CPU: 3 PID: 4242 Comm: foo-daemon Not tainted 3.10.0-1160.el7.x86_64 #1
<4>[  100.000400] Call Trace:
<4>[  100.000500]  [<ffffffff81251234>] do_vfs_ioctl+0x3a0/0x5a0
<4>[  100.000600]  [<ffffffff812514e1>] SyS_ioctl+0xa1/0xc0
<4>[  100.000700]  [<ffffffff81793f92>] system_call_fastpath+0x16/0x1b
"""
    info = classify(old_null.splitlines())
    assert info.klass == "null-deref"
    assert (info.cpu, info.pid, info.comm) == (3, 4242, "foo-daemon")
    assert info.frames[:2] == ("do_vfs_ioctl", "ioctl")
    old_sysrq = "[  50.0] SysRq : Trigger a crash\n[  50.1] BUG: unable to handle kernel NULL pointer dereference at (null)\n"
    assert classify(old_sysrq.splitlines()).klass == "null-deref"
    gpf_old = "[ 1.0] general protection fault: 0000 [#1] SMP\n[ 1.1] CPU: 0 PID: 9 Comm: x Not tainted 4.9.0 #1\n"
    assert classify(gpf_old.splitlines()).klass == "gpf"
    new_cpu = "[ 1.0] Kernel panic - not syncing: sysrq triggered crash\n[ 1.1] CPU: 2 UID: 0 PID: 77 Comm: bash Not tainted 6.12.0 #1\n"
    got = classify(new_cpu.splitlines())
    assert (got.klass, got.cpu, got.pid, got.comm) == ("sysrq", 2, 77, "bash")


def test_normalize_frame() -> None:
    assert normalize_frame("__handle_sysrq.cold") == "__handle_sysrq"
    assert normalize_frame("foo.isra.0") == "foo"
    assert normalize_frame("__alloc_pages_slowpath.constprop.0") == "__alloc_pages_slowpath"
    assert normalize_frame("ksys_write") == "write"
    assert signature_id("x") == signature_id("x") != signature_id("y")


ARM64_SYSRQ = """\
[   11.245986] sysrq: Trigger a crash
[   11.249277] Kernel panic - not syncing: sysrq triggered crash
[   11.249556] CPU: 1 PID: 154 Comm: lab-crash Kdump: loaded Not tainted 6.1.0-57-arm64 #1
[   11.249926] Hardware name: linux,dummy-virt (DT)
[   11.250264] Call trace:
[   11.250520]  dump_backtrace+0xe4/0x140
[   11.251202]  show_stack+0x20/0x30
[   11.251321]  dump_stack_lvl+0x64/0x80
[   11.251406]  dump_stack+0x18/0x34
[   11.251508]  panic+0x184/0x364
[   11.251581]  sysrq_reset_seq_param_set+0x0/0xa0
[   11.251682]  __handle_sysrq+0x90/0x19c
[   11.251778]  write_sysrq_trigger+0x7c/0xc8
[   11.251862]  proc_reg_write+0xac/0x100
[   11.251994]  vfs_write+0xdc/0x3a0
[   11.252072]  ksys_write+0x7c/0x11c
[   11.252146]  __arm64_sys_write+0x24/0x30
[   11.252252]  invoke_syscall+0x68/0xe0
[   11.252333]  el0_svc_common.constprop.0+0x4c/0xf4
[   11.252427]  do_el0_svc+0x2c/0x9c
[   11.252499]  el0_svc+0x34/0xdc
[   11.252582]  el0t_64_sync_handler+0xf4/0x120
[   11.252707]  el0t_64_sync+0x18c/0x190
[   11.253253] SMP: stopping secondary CPUs
"""


def test_arm64_trace_frames() -> None:
    """arm64's unwinder prints its own dump_backtrace frame first, and under a noreturn call
    the return address lands at +0x0 of the next function: neither is a frame of the bug."""
    info = classify(ARM64_SYSRQ.splitlines())
    assert (info.klass, info.cpu, info.pid, info.comm) == ("sysrq", 1, 154, "lab-crash")
    assert info.frames == ("__handle_sysrq", "write_sysrq_trigger", "proc_reg_write")
    # Entry frames are generic too: a trace of nothing but them gives no frames.
    entry = [line for line in ARM64_SYSRQ.splitlines() if "+0x" not in line or "el0" in line]
    assert classify(entry).frames == ()


def test_fixture_logs(vmcore_fixtures) -> None:  # type: ignore[no-untyped-def]
    for meta_path in sorted(vmcore_fixtures.glob("*/meta.json")):
        folder = meta_path.parent
        meta = json.loads(meta_path.read_text())
        expected = meta["expected"]
        log = folder / "makedumpfile-dmesg.txt"
        if not log.exists():
            log = folder / "crash-log.txt"
        info = classify(log.read_text().splitlines())
        assert info.klass == expected["panic_class"], folder.name
        assert (info.cpu, info.pid, info.comm) == (
            expected["panic_cpu"],
            expected["panic_pid"],
            expected["panic_comm"],
        ), folder.name
        assert info.panic_line == expected["panic_message"], folder.name
        if "crash_sys_panic" in expected:  # crash was not run on the arm64 dumps (README)
            assert info.crash_panic == expected["crash_sys_panic"], folder.name


LAB_EXPECTED = {
    # class: (cpu, pid, comm, signature)
    "warn": (0, 418, "init", "warn: WARNING at crashme.c | crashme_write < proc_reg_write < vfs_write"),
    "bug": (0, 418, "init", "bug: kernel BUG at crashme.c | crashme_write < proc_reg_write < vfs_write"),
    "gpf": (0, 418, "init", "gpf: general protection fault | crashme_gpf < crashme_write < proc_reg_write"),
    "oom": (0, 420, "dd", "oom: Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled"
            " | out_of_memory < __alloc_pages_slowpath < __alloc_pages"),
    "null-deref": (0, 419, "init", "null-deref: BUG: kernel NULL pointer dereference"
                   " | crashme_null < crashme_write < proc_reg_write"),
    "soft-lockup": (0, 428, "init", "soft-lockup: BUG: soft lockup"
                    " | crashme_spin < crashme_write < proc_reg_write"),
    "rcu-stall": (0, 429, "init", "rcu-stall: INFO: rcu detected stall"
                  " | crashme_spin < crashme_write < proc_reg_write"),
    "hung-task": (0, 29, "khungtaskd", "hung-task: INFO: task hung"
                  " | crashme_hung < crashme_write < proc_reg_write"),
}  # fmt: skip


@pytest.mark.parametrize("klass", sorted(LAB_EXPECTED))
def test_real_lab_dump_logs(klass: str) -> None:
    from tests.vmcore.lab_logs import LAB

    info = classify(LAB[klass].splitlines())
    cpu, pid, comm, signature = LAB_EXPECTED[klass]
    assert info.klass == klass
    assert info.signature == signature
    assert (info.cpu, info.pid, info.comm) == (cpu, pid, comm)
    assert info.panic_line is not None
    assert info.panic_line.startswith("Kernel panic - not syncing: ")
    # the temporary build directory of the module never reaches the signature
    assert "/tmp/" not in info.signature
