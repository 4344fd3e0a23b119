// SPDX-License-Identifier: GPL-2.0
/*
 * crashme: a test module for the kdiag lab. Writing one word to /proc/crashme
 * breaks the kernel in the named way:
 *
 *   null        store through a NULL pointer (oops; panics with panic_on_oops)
 *   bug         BUG()
 *   gpf         load from a non-canonical address (general protection fault)
 *   warn        WARN() (panics with panic_on_warn)
 *   softlockup  spin with preemption disabled (panics with softlockup_panic)
 *   rcu         spin inside an RCU read-side section (panics with panic_on_rcu_stall)
 *   hung        sleep uninterruptibly forever (panics with hung_task_panic)
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/uaccess.h>
#include <linux/sched.h>
#include <linux/rcupdate.h>
#include <linux/string.h>

static struct proc_dir_entry *crashme_entry;

static noinline void crashme_null(void)
{
	*(volatile int *)NULL = 0x6b646961;
}

static noinline void crashme_gpf(void)
{
	volatile unsigned long *bad = (volatile unsigned long *)0xdead000000000100UL;

	pr_info("crashme: value %lx\n", *bad);
}

static noinline void crashme_spin(bool in_rcu)
{
	if (in_rcu)
		rcu_read_lock();
	preempt_disable();
	for (;;)
		cpu_relax();
}

static noinline void crashme_hung(void)
{
	for (;;) {
		set_current_state(TASK_UNINTERRUPTIBLE);
		schedule();
	}
}

static ssize_t crashme_write(struct file *file, const char __user *ubuf,
			     size_t len, loff_t *pos)
{
	char word[16] = { 0 };
	size_t n = min(len, sizeof(word) - 1);

	if (copy_from_user(word, ubuf, n))
		return -EFAULT;
	strim(word);
	pr_info("crashme: %s\n", word);
	if (!strcmp(word, "null"))
		crashme_null();
	else if (!strcmp(word, "bug"))
		BUG();
	else if (!strcmp(word, "gpf"))
		crashme_gpf();
	else if (!strcmp(word, "warn"))
		WARN(1, "crashme: warning requested\n");
	else if (!strcmp(word, "softlockup"))
		crashme_spin(false);
	else if (!strcmp(word, "rcu"))
		crashme_spin(true);
	else if (!strcmp(word, "hung"))
		crashme_hung();
	else
		return -EINVAL;
	return len;
}

static const struct proc_ops crashme_ops = {
	.proc_write = crashme_write,
};

static int __init crashme_init(void)
{
	crashme_entry = proc_create("crashme", 0200, NULL, &crashme_ops);
	return crashme_entry ? 0 : -ENOMEM;
}

static void __exit crashme_exit(void)
{
	proc_remove(crashme_entry);
}

module_init(crashme_init);
module_exit(crashme_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdiag lab: break the kernel on request");
