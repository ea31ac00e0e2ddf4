// SPDX-License-Identifier: GPL-2.0
/*
 * debugfs test hooks of coco.ko: /sys/kernel/debug/coco/<device>/
 * (see Documentation/coco/architecture.rst; debugfs is not an ABI).
 *
 *   relay         write "claim" to hand the DOE mailbox to a test TSM named
 *                 "debugfs" (coco.ko then sends nothing of its own), "release"
 *                 to take it back, or "<type> <hex>" to relay one CMA/SPDM
 *                 (type 1) or secured CMA/SPDM (type 2) data object payload
 *                 through the TSM relay; read: the last response, in hex.
 *   session_hold  write 1 to hold the secure session as a user would (an IDE
 *                 stream, a TDI), 0 to drop the hold; read: 1 or 0.
 *   ide_host_streams  write N to size the pool of Stream IDs of the function's
 *                 host bridge (pci_ide_set_nr_streams(), as a platform with
 *                 fewer streams would at init; only while none is in use);
 *                 read: the pool's size.
 *   tsm_bind      write "bind <tdi_id>" to call the PCI core's pci_tsm_bind()
 *                 for the function as the VMM would (with a placeholder in
 *                 place of the VM, which nothing dereferences: the rig has no
 *                 KVM), "unbind" to call pci_tsm_unbind(); read: the answer
 *                 to a PCI_TSM_REQ_INFO guest request (pci_tsm_guest_req())
 *                 for the bound TDI, as the TSM returns it.
 */
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/hex.h>
#include <linux/idr.h>
#include <linux/kstrtox.h>
#include <linux/pci.h>
#include <linux/pci-ide.h>
#include <linux/pci-tsm.h>
#include <linux/slab.h>
#include <linux/sockptr.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "coco.h"

/* pci_ide_set_nr_streams() (the ide_host_streams test hook) */
MODULE_IMPORT_NS("PCI_IDE");

/* Largest data object payload relayed (QEMU's DOE limit). */
#define COCO_RELAY_MAX	4608

static struct dentry *coco_debugfs_root;

void coco_debugfs_init(void)
{
	coco_debugfs_root = debugfs_create_dir("coco", NULL);
}

void coco_debugfs_exit(void)
{
	debugfs_remove(coco_debugfs_root);
	coco_debugfs_root = NULL;
}

static char *coco_debugfs_input(const char __user *ubuf, size_t count)
{
	if (count > 2 * COCO_RELAY_MAX + 16)
		return ERR_PTR(-E2BIG);
	return memdup_user_nul(ubuf, count);
}

static ssize_t relay_write(struct file *file, const char __user *ubuf,
			   size_t count, loff_t *ppos)
{
	struct device *dev = file->private_data;
	char *in __free(kfree) = NULL;
	u8 *req __free(kfree) = NULL;
	unsigned int type;
	char *hex;
	size_t len;
	int rc;

	in = coco_debugfs_input(ubuf, count);
	if (IS_ERR(in))
		return PTR_ERR(no_free_ptr(in));
	strim(in);
	if (!strcmp(in, "claim"))
		rc = coco_rs_debug_claim(dev, true);
	else if (!strcmp(in, "release"))
		rc = coco_rs_debug_claim(dev, false);
	else {
		hex = strchr(in, ' ');
		if (!hex)
			return -EINVAL;
		*hex++ = '\0';
		if (kstrtouint(in, 0, &type))
			return -EINVAL;
		hex = skip_spaces(hex);
		len = strlen(hex);
		if (len % 2 || len / 2 > COCO_RELAY_MAX)
			return -EINVAL;
		req = kmalloc(len / 2 ? len / 2 : 1, GFP_KERNEL);
		if (!req)
			return -ENOMEM;
		if (hex2bin(req, hex, len / 2))
			return -EINVAL;
		rc = coco_rs_debug_relay(dev, type, req, len / 2);
	}
	return rc ? rc : count;
}

static ssize_t relay_read(struct file *file, char __user *ubuf, size_t count,
			  loff_t *ppos)
{
	struct device *dev = file->private_data;
	u8 *rsp __free(kfree) = kmalloc(COCO_RELAY_MAX, GFP_KERNEL);
	char *hex __free(kfree) = kmalloc(2 * COCO_RELAY_MAX + 2, GFP_KERNEL);
	ssize_t n;
	char *end;

	if (!rsp || !hex)
		return -ENOMEM;
	n = coco_rs_debug_relay_last(dev, rsp, COCO_RELAY_MAX);
	if (n < 0)
		return n;
	end = bin2hex(hex, rsp, n);
	*end++ = '\n';
	return simple_read_from_buffer(ubuf, count, ppos, hex, end - hex);
}

static const struct file_operations relay_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = relay_read,
	.write = relay_write,
	.llseek = default_llseek,
};

static ssize_t session_hold_write(struct file *file, const char __user *ubuf,
				  size_t count, loff_t *ppos)
{
	struct device *dev = file->private_data;
	bool hold;
	int rc;

	rc = kstrtobool_from_user(ubuf, count, &hold);
	if (rc)
		return rc;
	rc = coco_rs_debug_session_hold(dev, hold);
	return rc ? rc : count;
}

static ssize_t session_hold_read(struct file *file, char __user *ubuf,
				 size_t count, loff_t *ppos)
{
	struct device *dev = file->private_data;
	char buf[4];
	int n;

	n = scnprintf(buf, sizeof(buf), "%d\n", coco_rs_debug_session_held(dev));
	return simple_read_from_buffer(ubuf, count, ppos, buf, n);
}

static const struct file_operations session_hold_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = session_hold_read,
	.write = session_hold_write,
	.llseek = default_llseek,
};

static ssize_t ide_host_streams_write(struct file *file,
				      const char __user *ubuf, size_t count,
				      loff_t *ppos)
{
	struct device *dev = file->private_data;
	struct pci_host_bridge *hb;
	u16 nr;
	int rc;

	if (!dev_is_pci(dev))
		return -ENODEV;
	rc = kstrtou16_from_user(ubuf, count, 0, &nr);
	if (rc)
		return rc;
	if (!nr || nr > 256)
		return -EINVAL;
	hb = pci_find_host_bridge(to_pci_dev(dev)->bus);
	/* The pool may only change while no stream uses it. */
	if (!ida_is_empty(&hb->ide_stream_ida))
		return -EBUSY;
	pci_ide_set_nr_streams(hb, nr);
	return count;
}

static ssize_t ide_host_streams_read(struct file *file, char __user *ubuf,
				     size_t count, loff_t *ppos)
{
	struct device *dev = file->private_data;
	char buf[8];
	int n;

	if (!dev_is_pci(dev))
		return -ENODEV;
	n = scnprintf(buf, sizeof(buf), "%u\n",
		      pci_find_host_bridge(to_pci_dev(dev)->bus)->nr_ide_streams);
	return simple_read_from_buffer(ubuf, count, ppos, buf, n);
}

static const struct file_operations ide_host_streams_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = ide_host_streams_read,
	.write = ide_host_streams_write,
	.llseek = default_llseek,
};

/*
 * The VM a test bind is for: pci_tsm_bind() wants one, and only compares and
 * stores the pointer (as does coco.ko); never dereferenced.
 */
static char coco_test_vm;

static ssize_t tsm_bind_write(struct file *file, const char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	struct device *dev = file->private_data;
	char *in __free(kfree) = NULL;
	u32 tdi_id;
	int rc;

	if (!dev_is_pci(dev))
		return -ENODEV;
	in = coco_debugfs_input(ubuf, count);
	if (IS_ERR(in))
		return PTR_ERR(no_free_ptr(in));
	strim(in);
	if (!strcmp(in, "unbind")) {
		pci_tsm_unbind(to_pci_dev(dev));
		return count;
	}
	if (strncmp(in, "bind ", 5) || kstrtou32(in + 5, 0, &tdi_id))
		return -EINVAL;
	rc = pci_tsm_bind(to_pci_dev(dev), (struct kvm *)&coco_test_vm, tdi_id);
	return rc ? rc : count;
}

/* Largest PCI_TSM_REQ_INFO answer read through tsm_bind. */
#define COCO_TSM_INFO_MAX	(64 * 1024)

static ssize_t tsm_bind_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	struct device *dev = file->private_data;
	void *info __free(kvfree) = NULL;
	u64 tsm_code = 0;
	ssize_t n;

	if (!dev_is_pci(dev))
		return -ENODEV;
	info = kvzalloc(COCO_TSM_INFO_MAX, GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	n = pci_tsm_guest_req(to_pci_dev(dev), PCI_TSM_REQ_INFO,
			      KERNEL_SOCKPTR(NULL), 0, KERNEL_SOCKPTR(info),
			      COCO_TSM_INFO_MAX, &tsm_code);
	if (n < 0)
		return n;
	return simple_read_from_buffer(ubuf, count, ppos, info, n);
}

static const struct file_operations tsm_bind_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = tsm_bind_read,
	.write = tsm_bind_write,
	.llseek = default_llseek,
};

/* The device's directory; removed (waiting for running file operations) by coco_debugfs_remove(). */
struct dentry *coco_debugfs_add(struct device *dev)
{
	struct dentry *dir;

	if (IS_ERR_OR_NULL(coco_debugfs_root))
		return NULL;
	dir = debugfs_create_dir(dev_name(dev), coco_debugfs_root);
	if (IS_ERR(dir))
		return NULL;
	debugfs_create_file("relay", 0600, dir, dev, &relay_fops);
	debugfs_create_file("session_hold", 0600, dir, dev, &session_hold_fops);
	debugfs_create_file("tsm_bind", 0600, dir, dev, &tsm_bind_fops);
	debugfs_create_file("ide_host_streams", 0600, dir, dev, &ide_host_streams_fops);
	return dir;
}

void coco_debugfs_remove(struct dentry *dir)
{
	debugfs_remove(dir);
}
