"""Excerpts of real lab dumps (Debian 6.1.0-56-amd64 guests crashed by the lab helper's
triggers, logs read with ``kdiag analyze --log``): the report block through the panic's stack dump."""

# ruff: noqa: E501, W291

LAB = {
    "warn": """\
[    3.511048] crashme: module verification failed: signature and/or required key missing - tainting kernel
[    6.772874] crashme: warn
[    6.773408] ------------[ cut here ]------------
[    6.773524] crashme: warning requested
[    6.773898] WARNING: CPU: 0 PID: 418 at /tmp/kdiag-crashme-ib9spt53/crashme.c:69 crashme_write+0x153/0x177 [crashme]
[    6.774396] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[    6.774759] CPU: 0 PID: 418 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[    6.775066] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    6.775347] RIP: 0010:crashme_write+0x153/0x177 [crashme]
[    6.775532] Code: 77 5f ea 89 c2 48 c7 c0 ea ff ff ff 85 d2 0f 85 2a ff ff ff e8 9e fe ff ff e8 49 35 65 ea 48 c7 c7 cf 60 3f c0 e8 8d c8 ca e9 <0f> 0b 48 89 d8 e9 0a ff ff ff e8 3e fe ff ff eb f1 0f 0b bf 01 00
[    6.780280] RSP: 0018:ff5c5a6340777d18 EFLAGS: 00000286
[    6.780450] RAX: 0000000000000000 RBX: 0000000000000005 RCX: c0000000ffffefff
[    6.780602] RDX: 0000000000000000 RSI: 00000000ffffefff RDI: 0000000000000001
[    6.780750] RBP: 0000000000000005 R08: 0000000000000000 R09: ff5c5a6340777b90
[    6.780898] R10: 0000000000000003 R11: ffffffffabad4448 R12: 00000000343bbf10
[    6.781160] R13: 00000000343bbf10 R14: ff18b9051f0fb800 R15: 0000000000000000
[    6.781381] FS:  00000000343b73c0(0000) GS:ff18b9051e400000(0000) knlGS:0000000000000000
[    6.781555] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[    6.781679] CR2: 0000000000559c5a CR3: 000000001ff22000 CR4: 0000000000751ef0
[    6.781948] PKRU: 55555554
[    6.782074] Call Trace:
[    6.782700]  <TASK>
[    6.783059]  proc_reg_write+0x56/0xa0
[    6.783310]  vfs_write+0xc7/0x3f0
[    6.783409]  ? do_fault+0x1a7/0x410
[    6.783499]  ksys_write+0x6b/0xf0
[    6.783580]  do_syscall_64+0x5d/0xb0
[    6.783688]  ? handle_mm_fault+0xdb/0x2d0
[    6.783785]  ? do_user_addr_fault+0x1b0/0x570
[    6.787964]  ? exit_to_user_mode_prepare+0x44/0x240
[    6.788128]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[    6.788407] RIP: 0033:0x47b7a0
[    6.788668] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[    6.789220] RSP: 002b:00007fff8d39b248 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[    6.789412] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[    6.789555] RDX: 0000000000000005 RSI: 00000000343bbf10 RDI: 0000000000000001
[    6.789694] RBP: 00000000343bbf10 R08: 0000000000000000 R09: 0000000000000000
[    6.789847] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000000005
[    6.789987] R13: 00000000343b73a0 R14: 0000000000000001 R15: 00007fff8d39b2b0
[    6.790182]  </TASK>
[    6.790398] Kernel panic - not syncing: kernel: panic_on_warn set ...
[    6.790625] CPU: 0 PID: 418 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[    6.790840] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    6.791053] Call Trace:
[    6.791193]  <TASK>
[    6.791248]  dump_stack_lvl+0x44/0x5c
[    6.791340]  panic+0x118/0x2f4
[    6.791451]  ? crashme_write+0x153/0x177 [crashme]
[    6.791569]  check_panic_on_warn.cold+0xf/0x1e
[    6.791667]  __warn+0x89/0xc0
[    6.791740]  ? crashme_write+0x153/0x177 [crashme]
[    6.796108]  report_bug+0xe2/0x150
[    6.796276]  handle_bug+0x41/0x70
[    6.796358]  exc_invalid_op+0x13/0x60
""",
    "bug": """\
[    3.538461] crashme: module verification failed: signature and/or required key missing - tainting kernel
[   11.015643] crashme: bug
[   11.016115] ------------[ cut here ]------------
[   11.016249] kernel BUG at /tmp/kdiag-crashme-ib9spt53/crashme.c:65!
[   11.017127] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[   11.017517] CPU: 0 PID: 418 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   11.018126] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   11.018482] RIP: 0010:crashme_write+0x164/0x177 [crashme]
[   11.019081] Code: ff ff ff e8 9e fe ff ff e8 49 95 1f e7 48 c7 c7 cf 00 45 c0 e8 8d 28 85 e6 0f 0b 48 89 d8 e9 0a ff ff ff e8 3e fe ff ff eb f1 <0f> 0b bf 01 00 00 00 e8 50 fe ff ff 31 ff e8 49 fe ff ff 0f 1f 44
[   11.019547] RSP: 0018:ff7b05b500777e10 EFLAGS: 00000246
[   11.019695] RAX: 0000000000000000 RBX: 0000000000000004 RCX: c0000000ffffefff
[   11.019845] RDX: 0000000000000000 RSI: ffffffffc04500c2 RDI: ff7b05b500777e10
[   11.019994] RBP: 0000000000000004 R08: 0000000000000000 R09: ff7b05b500777ca8
[   11.020514] R10: 0000000000000003 R11: ffffffffa86d4448 R12: 000000002335ef10
[   11.020703] R13: 000000002335ef10 R14: ff32f556c26b9800 R15: 0000000000000000
[   11.021086] FS:  000000002335a3c0(0000) GS:ff32f556d6400000(0000) knlGS:0000000000000000
[   11.021352] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   11.021550] CR2: 0000000000559c5a CR3: 000000001ff24000 CR4: 0000000000751ef0
[   11.021988] PKRU: 55555554
[   11.022213] Call Trace:
[   11.023245]  <TASK>
[   11.023881]  proc_reg_write+0x56/0xa0
[   11.024311]  vfs_write+0xc7/0x3f0
[   11.024487]  ? handle_mm_fault+0xdb/0x2d0
[   11.024661]  ksys_write+0x6b/0xf0
[   11.024805]  do_syscall_64+0x5d/0xb0
[   11.024991]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   11.025462] RIP: 0033:0x47b7a0
[   11.025984] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[   11.026531] RSP: 002b:00007fff0322a148 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   11.026823] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   11.027073] RDX: 0000000000000004 RSI: 000000002335ef10 RDI: 0000000000000001
[   11.027330] RBP: 000000002335ef10 R08: 0000000000000000 R09: 0000000000000000
[   11.027554] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000000004
[   11.027773] R13: 000000002335a3a0 R14: 0000000000000001 R15: 00007fff0322a1b0
[   11.028109]  </TASK>
[   11.028316] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[   11.029779] ---[ end trace 0000000000000000 ]---
[   11.030204] RIP: 0010:crashme_write+0x164/0x177 [crashme]
[   11.030565] Code: ff ff ff e8 9e fe ff ff e8 49 95 1f e7 48 c7 c7 cf 00 45 c0 e8 8d 28 85 e6 0f 0b 48 89 d8 e9 0a ff ff ff e8 3e fe ff ff eb f1 <0f> 0b bf 01 00 00 00 e8 50 fe ff ff 31 ff e8 49 fe ff ff 0f 1f 44
[   11.031100] RSP: 0018:ff7b05b500777e10 EFLAGS: 00000246
[   11.031315] RAX: 0000000000000000 RBX: 0000000000000004 RCX: c0000000ffffefff
[   11.031515] RDX: 0000000000000000 RSI: ffffffffc04500c2 RDI: ff7b05b500777e10
[   11.031705] RBP: 0000000000000004 R08: 0000000000000000 R09: ff7b05b500777ca8
[   11.031897] R10: 0000000000000003 R11: ffffffffa86d4448 R12: 000000002335ef10
[   11.032114] R13: 000000002335ef10 R14: ff32f556c26b9800 R15: 0000000000000000
[   11.032342] FS:  000000002335a3c0(0000) GS:ff32f556d6400000(0000) knlGS:0000000000000000
[   11.032593] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   11.032776] CR2: 0000000000559c5a CR3: 000000001ff24000 CR4: 0000000000751ef0
[   11.033069] PKRU: 55555554
[   11.033422] Kernel panic - not syncing: Fatal exception
[   11.034675] Kernel Offset: 0x25c00000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
""",
    "gpf": """\
[    4.336020] crashme: module verification failed: signature and/or required key missing - tainting kernel
[   11.212614] crashme: gpf
[   11.214247] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI
[   11.214699] CPU: 0 PID: 418 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   11.215092] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   11.215456] RIP: 0010:crashme_gpf+0xf/0x1e [crashme]
[   11.215906] Code: ff e8 3e fe ff ff eb f1 0f 0b bf 01 00 00 00 e8 50 fe ff ff 31 ff e8 49 fe ff ff 0f 1f 44 00 00 48 b8 00 01 00 00 00 00 ad de <48> 8b 30 48 c7 c7 98 f0 27 c0 e9 48 9c 78 fb e8 dd ff ff ff e9 b6
[   11.216421] RSP: 0018:ff410e9f0072fa68 EFLAGS: 00000246
[   11.216562] RAX: dead000000000100 RBX: 0000000000000004 RCX: c0000000ffffefff
[   11.216714] RDX: 0000000000000000 RSI: ffffffffc027f0c6 RDI: ff410e9f0072fa70
[   11.216860] RBP: 0000000000000004 R08: 0000000000000000 R09: ff410e9f0072f908
[   11.217006] R10: 0000000000000003 R11: ffffffffbcad4448 R12: 000000001483cf10
[   11.217241] R13: 000000001483cf10 R14: ff2b1d0f0269f800 R15: 0000000000000000
[   11.217449] FS:  00000000148383c0(0000) GS:ff2b1d0f16400000(0000) knlGS:0000000000000000
[   11.217620] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   11.217786] CR2: 0000000000559c5a CR3: 000000001fec4000 CR4: 0000000000751ef0
[   11.218053] PKRU: 55555554
[   11.218174] Call Trace:
[   11.218762]  <TASK>
[   11.219142]  crashme_write.cold+0x5/0xa [crashme]
[   11.219577]  proc_reg_write+0x56/0xa0
[   11.219742]  vfs_write+0xc7/0x3f0
[   11.219835]  ksys_write+0x6b/0xf0
[   11.219913]  do_syscall_64+0x5d/0xb0
[   11.220025]  ? do_filp_open+0xaf/0x160
[   11.220127]  ? page_add_file_rmap+0xba/0x2f0
[   11.220226]  ? do_set_pte+0x189/0x1d0
[   11.220312]  ? filemap_map_pages+0x153/0x720
[   11.220416]  ? do_fault+0x1a7/0x410
[   11.220494]  ? __handle_mm_fault+0x660/0xfa0
[   11.220587]  ? syscall_exit_to_user_mode+0x1e/0x40
[   11.220701]  ? handle_mm_fault+0xdb/0x2d0
[   11.220790]  ? do_user_addr_fault+0x1b0/0x570
[   11.220890]  ? exit_to_user_mode_prepare+0x44/0x240
[   11.220997]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   11.221217] RIP: 0033:0x47b7a0
[   11.221459] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[   11.221856] RSP: 002b:00007fffe00f6dd8 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   11.222048] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   11.222193] RDX: 0000000000000004 RSI: 000000001483cf10 RDI: 0000000000000001
[   11.222341] RBP: 000000001483cf10 R08: 0000000000000000 R09: 0000000000000000
[   11.222484] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000000004
[   11.222626] R13: 00000000148383a0 R14: 0000000000000001 R15: 00007fffe00f6e40
[   11.222821]  </TASK>
[   11.222924] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[   11.223539] ---[ end trace 0000000000000000 ]---
[   11.223678] RIP: 0010:crashme_gpf+0xf/0x1e [crashme]
[   11.223801] Code: ff e8 3e fe ff ff eb f1 0f 0b bf 01 00 00 00 e8 50 fe ff ff 31 ff e8 49 fe ff ff 0f 1f 44 00 00 48 b8 00 01 00 00 00 00 ad de <48> 8b 30 48 c7 c7 98 f0 27 c0 e9 48 9c 78 fb e8 dd ff ff ff e9 b6
[   11.224154] RSP: 0018:ff410e9f0072fa68 EFLAGS: 00000246
[   11.224264] RAX: dead000000000100 RBX: 0000000000000004 RCX: c0000000ffffefff
[   11.224404] RDX: 0000000000000000 RSI: ffffffffc027f0c6 RDI: ff410e9f0072fa70
[   11.224543] RBP: 0000000000000004 R08: 0000000000000000 R09: ff410e9f0072f908
[   11.224682] R10: 0000000000000003 R11: ffffffffbcad4448 R12: 000000001483cf10
[   11.224820] R13: 000000001483cf10 R14: ff2b1d0f0269f800 R15: 0000000000000000
[   11.224962] FS:  00000000148383c0(0000) GS:ff2b1d0f16400000(0000) knlGS:0000000000000000
[   11.225237] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   11.225361] CR2: 0000000000559c5a CR3: 000000001fec4000 CR4: 0000000000751ef0
[   11.225504] PKRU: 55555554
[   11.225720] Kernel panic - not syncing: Fatal exception
[   11.227124] Kernel Offset: 0x3a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
""",
    "oom": """\
[    3.314111] crashme: loading out-of-tree module taints kernel.
[    3.314660] crashme: module verification failed: signature and/or required key missing - tainting kernel
[   18.786026] dd invoked oom-killer: gfp_mask=0x140cc2(GFP_HIGHUSER|__GFP_COMP), order=0, oom_score_adj=0
[   18.786714] CPU: 0 PID: 420 Comm: dd Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   18.787233] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   18.787769] Call Trace:
[   18.788795]  <TASK>
[   18.789167]  dump_stack_lvl+0x44/0x5c
[   18.789616]  dump_header+0x4c/0x22b
[   18.789749]  out_of_memory.cold+0x42/0x7e
[   18.789896]  __alloc_pages_slowpath.constprop.0+0x67f/0xe70
[   18.790085]  __alloc_pages+0x305/0x330
[   18.790181]  folio_alloc+0x17/0x50
[   18.790275]  __filemap_get_folio+0x155/0x340
[   18.790458]  ? copy_user_enhanced_fast_string+0xa/0x50
[   18.790642]  pagecache_get_page+0x11/0x60
[   18.790776]  simple_write_begin+0x20/0xb0
[   18.790909]  generic_perform_write+0xd8/0x240
[   18.791144]  __generic_file_write_iter+0xca/0xe0
[   18.791299]  generic_file_write_iter+0x61/0xd0
[   18.791450]  vfs_write+0x235/0x3f0
[   18.791583]  ksys_write+0x6b/0xf0
[   18.791704]  do_syscall_64+0x5d/0xb0
[   18.791824]  ? do_syscall_64+0x69/0xb0
[   18.791946]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   18.792338] RIP: 0033:0x47b7a0
[   18.792896] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[   18.793564] RSP: 002b:00007ffc70c0fe38 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   18.793899] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   18.794248] RDX: 0000000000100000 RSI: 00007f41ebc88000 RDI: 0000000000000001
[   18.794495] RBP: 00007f41ebc88000 R08: 0000000000000000 R09: 0000000000558b93
[   18.794733] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000100000
[   18.795039] R13: 0000000001abb3a0 R14: 00007f41ebc88000 R15: 0000000000000000
[   18.795546]  </TASK>
[   18.795827] Mem-Info:
[   18.796119] active_anon:4061 inactive_anon:1494 isolated_anon:0
                active_file:0 inactive_file:0 isolated_file:0
                unevictable:70942 dirty:0 writeback:0
                slab_reclaimable:2389 slab_unreclaimable:1596
                mapped:432 shmem:5243 pagetables:26
                sec_pagetables:0 bounce:0
                kernel_misc_reclaimable:0
                free:840 free_pcp:24 free_cma:0
[   18.797206] Node 0 active_anon:16244kB inactive_anon:5976kB active_file:0kB inactive_file:0kB unevictable:283768kB isolated(anon):0kB isolated(file):0kB mapped:1728kB dirty:0kB writeback:0kB shmem:20972kB shmem_thp: 0kB shmem_pmdmapped: 0kB anon_thp: 0kB writeback_tmp:0kB kernel_stack:768kB pagetables:104kB sec_pagetables:0kB all_unreclaimable? yes
[   18.799299] Node 0 DMA free:1260kB boost:0kB min:108kB low:132kB high:156kB reserved_highatomic:0KB active_anon:0kB inactive_anon:0kB active_file:0kB inactive_file:0kB unevictable:13908kB writepending:0kB present:15992kB managed:15360kB mlocked:0kB bounce:0kB free_pcp:0kB local_pcp:0kB free_cma:0kB
[   18.800180] lowmem_reserve[]: 0 289 289 289 289
[   18.800421] Node 0 DMA32 free:2100kB boost:0kB min:2120kB low:2648kB high:3176kB reserved_highatomic:0KB active_anon:16244kB inactive_anon:5976kB active_file:0kB inactive_file:0kB unevictable:269852kB writepending:0kB present:507764kB managed:319952kB mlocked:0kB bounce:0kB free_pcp:96kB local_pcp:96kB free_cma:0kB
[   18.801413] lowmem_reserve[]: 0 0 0 0 0
[   18.801754] Node 0 DMA: 1*4kB (U) 1*8kB (U) 0*16kB 1*32kB (U) 1*64kB (U) 1*128kB (U) 0*256kB 0*512kB 1*1024kB (U) 0*2048kB 0*4096kB = 1260kB
[   18.802636] Node 0 DMA32: 3*4kB (ME) 3*8kB (ME) 3*16kB (ME) 3*32kB (UM) 2*64kB (UM) 2*128kB (UE) 2*256kB (UM) 2*512kB (UE) 0*1024kB 0*2048kB 0*4096kB = 2100kB
[   18.803294] Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size=1048576kB
[   18.803540] Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size=2048kB
[   18.803753] 76199 total pagecache pages
[   18.803862] 0 pages in swap cache
[   18.803941] Free swap  = 0kB
[   18.804048] Total swap = 0kB
[   18.804224] 130939 pages RAM
[   18.804326] 0 pages HighMem/MovableOnly
[   18.804448] 47111 pages reserved
[   18.804556] 0 pages hwpoisoned
[   18.804911] Tasks state (memory values in pages):
[   18.805075] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[   18.805732] [    123]     0   123      565       23    28672        0             0 init
[   18.806005] [    420]     0   420      821      500    40960        0             0 dd
[   18.806257] [    422]     0   422      565        1    28672        0             0 sleep
[   18.806740] Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled
[   18.807154] CPU: 0 PID: 420 Comm: dd Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   18.807520] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   18.807804] Call Trace:
[   18.807922]  <TASK>
[   18.808029]  dump_stack_lvl+0x44/0x5c
[   18.808208]  panic+0x118/0x2f4
[   18.808364]  out_of_memory.cold+0x67/0x7e
[   18.808489]  __alloc_pages_slowpath.constprop.0+0x67f/0xe70
[   18.808649]  __alloc_pages+0x305/0x330
[   18.808843]  folio_alloc+0x17/0x50
[   18.808931]  __filemap_get_folio+0x155/0x340
[   18.809030]  ? copy_user_enhanced_fast_string+0xa/0x50
[   18.809146]  pagecache_get_page+0x11/0x60
""",
    "null-deref": """\
[    4.424186] crashme: module verification failed: signature and/or required key missing - tainting kernel
[   11.931624] crashme: null
[   11.936464] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   11.936680] #PF: supervisor write access in kernel mode
[   11.936802] #PF: error_code(0x0002) - not-present page
[   11.936961] PGD 1fed4067 P4D 12df8067 PUD 1139e067 PMD 0 
[   11.937359] Oops: 0002 [#1] PREEMPT SMP NOPTI
[   11.937571] CPU: 0 PID: 419 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   11.937887] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   11.938171] RIP: 0010:crashme_null+0x5/0x20 [crashme]
[   11.938780] Code: Unable to access opcode bytes at 0xffffffffc05a3fdb.
[   11.938942] RSP: 0018:ff794190c075fac8 EFLAGS: 00000246
[   11.939080] RAX: 0000000000000000 RBX: 0000000000000005 RCX: c0000000ffffefff
[   11.939230] RDX: 0000000000000000 RSI: ffffffffc05a50bd RDI: ff794190c075fad0
[   11.939377] RBP: 0000000000000005 R08: 0000000000000000 R09: ff794190c075f968
[   11.939523] R10: 0000000000000003 R11: ffffffffa60d4448 R12: 000000002216cf10
[   11.943807] R13: 000000002216cf10 R14: ff40b3f0c24a4000 R15: 0000000000000000
[   11.944080] FS:  00000000221683c0(0000) GS:ff40b3f0d6400000(0000) knlGS:0000000000000000
[   11.944258] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   11.944383] CR2: ffffffffc05a3fdb CR3: 0000000011d02000 CR4: 0000000000751ef0
[   11.944721] PKRU: 55555554
[   11.944860] Call Trace:
[   11.945475]  <TASK>
[   11.945696]  crashme_write+0x162/0x177 [crashme]
[   11.946084]  proc_reg_write+0x56/0xa0
[   11.946245]  vfs_write+0xc7/0x3f0
[   11.946336]  ksys_write+0x6b/0xf0
[   11.946416]  do_syscall_64+0x5d/0xb0
[   11.946526]  ? do_filp_open+0xaf/0x160
[   11.946628]  ? page_add_file_rmap+0xba/0x2f0
[   11.946725]  ? do_set_pte+0x189/0x1d0
[   11.946812]  ? filemap_map_pages+0x153/0x720
[   11.946914]  ? do_fault+0x1a7/0x410
[   11.946992]  ? __handle_mm_fault+0x660/0xfa0
[   11.947093]  ? handle_mm_fault+0xdb/0x2d0
[   11.947181]  ? do_user_addr_fault+0x1b0/0x570
[   11.947280]  ? exit_to_user_mode_prepare+0x44/0x240
[   11.947387]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   11.947606] RIP: 0033:0x47b7a0
[   11.947931] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[   11.948330] RSP: 002b:00007ffd11b3b848 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   11.948507] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   11.948650] RDX: 0000000000000005 RSI: 000000002216cf10 RDI: 0000000000000001
[   11.948789] RBP: 000000002216cf10 R08: 0000000000000000 R09: 0000000000000000
[   11.948928] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000000005
[   11.949066] R13: 00000000221683a0 R14: 0000000000000001 R15: 00007ffd11b3b8b0
[   11.949257]  </TASK>
[   11.949364] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[   11.949733] CR2: 0000000000000000
[   11.949994] ---[ end trace 0000000000000000 ]---
[   11.950122] RIP: 0010:crashme_null+0x5/0x20 [crashme]
[   11.950271] Code: Unable to access opcode bytes at 0xffffffffc05a3fdb.
[   11.950400] RSP: 0018:ff794190c075fac8 EFLAGS: 00000246
[   11.950510] RAX: 0000000000000000 RBX: 0000000000000005 RCX: c0000000ffffefff
[   11.950651] RDX: 0000000000000000 RSI: ffffffffc05a50bd RDI: ff794190c075fad0
[   11.950790] RBP: 0000000000000005 R08: 0000000000000000 R09: ff794190c075f968
[   11.950928] R10: 0000000000000003 R11: ffffffffa60d4448 R12: 000000002216cf10
[   11.951066] R13: 000000002216cf10 R14: ff40b3f0c24a4000 R15: 0000000000000000
[   11.951209] FS:  00000000221683c0(0000) GS:ff40b3f0d6400000(0000) knlGS:0000000000000000
[   11.951367] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   11.951592] CR2: ffffffffc05a3fdb CR3: 0000000011d02000 CR4: 0000000000751ef0
[   11.955914] PKRU: 55555554
[   11.956175] Kernel panic - not syncing: Fatal exception
[   11.956932] Kernel Offset: 0x23600000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
""",
    "soft-lockup": """\
[   10.431195] crashme: softlockup
[   10.881172] hrtimer: interrupt took 17920050 ns
[   18.820516] watchdog: BUG: soft lockup - CPU#0 stuck for 8s! [init:428]
[   18.820686] Modules linked in: crashme(OE) pvpanic_mmio pvpanic qemu_fw_cfg
[   18.820686] CPU: 0 PID: 428 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   18.820686] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   18.820686] RIP: 0010:crashme_spin+0x13/0x20 [crashme]
[   18.820686] Code: 00 00 00 61 69 64 6b c3 cc cc cc cc 66 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 44 00 00 40 84 ff 75 0b 65 ff 05 0f 7b d2 3f f3 90 <eb> fc e8 76 bc e3 c4 eb ee 0f 1f 40 00 0f 1f 44 00 00 53 65 48 8b
[   18.826498] RSP: 0018:ff4f07d6407d3bf0 EFLAGS: 00000282
[   18.826498] RAX: 0000000000000000 RBX: 000000000000000b RCX: c0000000ffffefff
[   18.826498] RDX: 0000000000000000 RSI: ffffffffc02f90eb RDI: 0000000000000000
[   18.826498] RBP: 000000000000000b R08: 0000000000000000 R09: ff4f07d6407d3a90
[   18.826498] R10: 0000000000000003 R11: ffffffff86ad4448 R12: 000000003edb4f50
[   18.826498] R13: 000000003edb4f50 R14: ff169540c1b6a800 R15: 0000000000000000
[   18.826498] FS:  000000003edb03c0(0000) GS:ff169540de400000(0000) knlGS:0000000000000000
[   18.826498] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   18.826498] CR2: 0000000000559c5a CR3: 000000001d9fc000 CR4: 0000000000751ef0
[   18.826498] PKRU: 55555554
[   18.826498] Call Trace:
[   18.826498]  <TASK>
[   18.826498]  crashme_write+0x177/0x177 [crashme]
[   18.826498]  proc_reg_write+0x56/0xa0
[   18.826498]  vfs_write+0xc7/0x3f0
[   18.826498]  ksys_write+0x6b/0xf0
[   18.826498]  do_syscall_64+0x5d/0xb0
[   18.826498]  ? do_fault+0x1a7/0x410
[   18.826498]  ? __handle_mm_fault+0x660/0xfa0
[   18.826498]  ? handle_mm_fault+0xdb/0x2d0
[   18.826498]  ? do_user_addr_fault+0x1b0/0x570
[   18.826498]  ? exit_to_user_mode_prepare+0x44/0x240
[   18.826498]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   18.826498] RIP: 0033:0x47b7a0
[   18.826498] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[   18.826498] RSP: 002b:00007ffe4d572bf8 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   18.826498] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   18.826498] RDX: 000000000000000b RSI: 000000003edb4f50 RDI: 0000000000000001
[   18.826498] RBP: 000000003edb4f50 R08: 0000000000000000 R09: 0070756b636f6c74
[   18.826498] R10: 00000000000001b6 R11: 0000000000000202 R12: 000000000000000b
[   18.826498] R13: 000000003edb03a0 R14: 0000000000000001 R15: 00007ffe4d572c60
[   18.826498]  </TASK>
[   18.826498] Kernel panic - not syncing: softlockup: hung tasks
[   18.826498] CPU: 0 PID: 428 Comm: init Kdump: loaded Tainted: G           OEL     6.1.0-56-amd64 #1  Debian 6.1.192-2
[   18.826498] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   18.826498] Call Trace:
[   18.826498]  <IRQ>
[   18.826498]  dump_stack_lvl+0x44/0x5c
[   18.826498]  panic+0x118/0x2f4
[   18.826498]  watchdog_timer_fn.cold+0xc/0x16
[   18.826498]  ? lockup_detector_update_enable+0x50/0x50
[   18.826498]  __hrtimer_run_queues+0x10d/0x250
[   18.826498]  hrtimer_interrupt+0xf4/0x210
[   18.826498]  __sysvec_apic_timer_interrupt+0x5d/0x110
[   18.826498]  sysvec_apic_timer_interrupt+0x69/0x90
[   18.826498]  </IRQ>
""",
    "rcu-stall": """\
[   12.707151] crashme: module verification failed: signature and/or required key missing - tainting kernel
[   23.443338] crashme: rcu
[   26.449249] rcu: INFO: rcu_preempt self-detected stall on CPU
[   26.449249] rcu: 	0-....: (747 ticks this GP) idle=44b4/1/0x4000000000000000 softirq=738/738 fqs=373
[   26.449249] 	(t=750 jiffies g=365 q=37 ncpus=2)
[   26.449249] CPU: 0 PID: 429 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   26.449249] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   26.449249] RIP: 0010:crashme_spin+0x13/0x20 [crashme]
[   26.449249] Code: 00 00 00 61 69 64 6b c3 cc cc cc cc 66 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 44 00 00 40 84 ff 75 0b 65 ff 05 0f 5b b9 3f f3 90 <eb> fc e8 76 9c 8a c2 eb ee 0f 1f 40 00 0f 1f 44 00 00 53 65 48 8b
[   26.449249] RSP: 0018:ff2f6894c06abc10 EFLAGS: 00000282
[   26.449249] RAX: 0000000000000001 RBX: 0000000000000004 RCX: c0000000ffffefff
[   26.449249] RDX: ff114da45fefc200 RSI: ffffffffc048b0f6 RDI: 0000000000000001
[   26.449249] RBP: 0000000000000004 R08: 0000000000000000 R09: ff2f6894c06abab0
[   26.449249] R10: 0000000000000003 R11: ffffffff846d4448 R12: 000000002fa56f50
[   26.449249] R13: 000000002fa56f50 R14: ff114da442474800 R15: 0000000000000000
[   26.449249] FS:  000000002fa523c0(0000) GS:ff114da45e400000(0000) knlGS:0000000000000000
[   26.453330] CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
[   26.453330] CR2: 0000000000559c5a CR3: 000000001841e000 CR4: 0000000000751ef0
[   26.453330] PKRU: 55555554
[   26.453330] Call Trace:
[   26.453330]  <TASK>
[   26.453330]  crashme_write+0x170/0x177 [crashme]
[   26.453330]  proc_reg_write+0x56/0xa0
[   26.453330]  vfs_write+0xc7/0x3f0
[   26.453330]  ? page_add_file_rmap+0xba/0x2f0
[   26.453330]  ksys_write+0x6b/0xf0
[   26.453330]  do_syscall_64+0x5d/0xb0
[   26.453330]  ? do_fault+0x1a7/0x410
[   26.453330]  ? __handle_mm_fault+0x660/0xfa0
[   26.453330]  ? handle_mm_fault+0xdb/0x2d0
[   26.453330]  ? do_user_addr_fault+0x1b0/0x570
[   26.453330]  ? exit_to_user_mode_prepare+0x44/0x240
[   26.453330]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   26.453330] RIP: 0033:0x47b7a0
[   26.453330] Code: 40 00 48 c7 c2 e0 ff ff ff f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 80 3d e8 85 16 00 00 74 17 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 58 c3 0f 1f 80 00 00 00 00 48 83 ec 28 48 89
[   26.453330] RSP: 002b:00007ffe69f14748 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   26.453330] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   26.453330] RDX: 0000000000000004 RSI: 000000002fa56f50 RDI: 0000000000000001
[   26.453330] RBP: 000000002fa56f50 R08: 0000000000000000 R09: 0000000000000000
[   26.453330] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000000004
[   26.453330] R13: 000000002fa523a0 R14: 0000000000000001 R15: 00007ffe69f147b0
[   26.453330]  </TASK>
[   26.453330] Kernel panic - not syncing: RCU Stall
[   26.453330] CPU: 0 PID: 429 Comm: init Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   26.453330] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   26.453330] Call Trace:
[   26.453330]  <IRQ>
[   26.453330]  dump_stack_lvl+0x44/0x5c
[   26.453330]  panic+0x118/0x2f4
[   26.453330]  panic_on_rcu_stall+0x30/0x35
[   26.453330]  rcu_sched_clock_irq.cold+0x154/0x459
[   26.453330]  ? update_load_avg+0x7e/0x780
[   26.453330]  ? sched_slice+0x87/0x140
[   26.453330]  ? trigger_load_balance+0x6e/0x340
[   26.453330]  update_process_times+0x70/0xb0
[   26.453330]  tick_sched_handle+0x22/0x60
""",
    "hung-task": """\
[    8.019184] crashme: module verification failed: signature and/or required key missing - tainting kernel
[   12.786165] crashme: hung
[   16.860139] INFO: task init:429 blocked for more than 3 seconds.
[   16.860529]       Tainted: G           OE      6.1.0-56-amd64 #1 Debian 6.1.192-2
[   16.860801] "echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
[   16.861026] task:init            state:D stack:0     pid:429   ppid:1      flags:0x00000002
[   16.861523] Call Trace:
[   16.861857]  <TASK>
[   16.862216]  __schedule+0x34d/0xa00
[   16.862936]  schedule+0x5a/0xd0
[   16.863084]  crashme_hung+0x1c/0x20 [crashme]
[   16.863297]  crashme_write+0x142/0x177 [crashme]
[   16.863412]  proc_reg_write+0x56/0xa0
[   16.863505]  vfs_write+0xc7/0x3f0
[   16.863856]  ? kmem_cache_free+0x15/0x310
[   16.863975]  ? do_sys_openat2+0x9b/0x170
[   16.864076]  ksys_write+0x6b/0xf0
[   16.864159]  do_syscall_64+0x5d/0xb0
[   16.864247]  ? page_add_file_rmap+0xba/0x2f0
[   16.864346]  ? do_set_pte+0x189/0x1d0
[   16.864436]  ? filemap_map_pages+0x153/0x720
[   16.864544]  ? do_fault+0x1a7/0x410
[   16.864625]  ? __handle_mm_fault+0x660/0xfa0
[   16.864731]  ? handle_mm_fault+0xdb/0x2d0
[   16.864823]  ? do_user_addr_fault+0x1b0/0x570
[   16.864926]  ? exit_to_user_mode_prepare+0x44/0x240
[   16.865038]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   16.869478] RIP: 0033:0x47b7a0
[   16.869823] RSP: 002b:00007ffc23d8e2c8 EFLAGS: 00000202 ORIG_RAX: 0000000000000001
[   16.870025] RAX: ffffffffffffffda RBX: 0000000000000001 RCX: 000000000047b7a0
[   16.870182] RDX: 0000000000000005 RSI: 0000000032af8f50 RDI: 0000000000000001
[   16.870336] RBP: 0000000032af8f50 R08: 0000000000000000 R09: 0000000000000000
[   16.870489] R10: 00000000000001b6 R11: 0000000000000202 R12: 0000000000000005
[   16.870641] R13: 0000000032af43a0 R14: 0000000000000001 R15: 00007ffc23d8e330
[   16.870843]  </TASK>
[   16.871066] Kernel panic - not syncing: hung_task: blocked tasks
[   16.871327] CPU: 0 PID: 29 Comm: khungtaskd Kdump: loaded Tainted: G           OE      6.1.0-56-amd64 #1  Debian 6.1.192-2
[   16.873310] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   16.873310] Call Trace:
[   16.873310]  <TASK>
[   16.873310]  dump_stack_lvl+0x44/0x5c
[   16.873310]  panic+0x118/0x2f4
[   16.873310]  watchdog.cold+0xc/0xbb
[   16.873310]  ? proc_dohung_task_timeout_secs+0x30/0x30
[   16.873310]  kthread+0xda/0x100
[   16.873310]  ? kthread_complete_and_exit+0x20/0x20
[   16.873310]  ret_from_fork+0x22/0x30
[   16.873310]  </TASK>
[   16.873310] Kernel Offset: 0x31400000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
""",
}
