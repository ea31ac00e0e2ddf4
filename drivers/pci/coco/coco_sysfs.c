// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs attribute group of coco.ko: /sys/bus/pci/devices/<BDF>/coco/
 * (see Documentation/ABI/testing/sysfs-bus-pci-coco).
 *
 * Reads only report what the last protocol run stored; they never cause
 * device traffic. Writes are root-only (modes 0200 and 0644) and run the
 * protocol synchronously.
 */
#include <linux/device.h>
#include <linux/hex.h>
#include <linux/kobject.h>
#include <linux/kstrtox.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "coco.h"

static ssize_t coco_show(struct device *dev, enum coco_attr attr, char *buf)
{
	return coco_rs_attr_show(dev, attr, buf, PAGE_SIZE);
}

static ssize_t spdm_versions_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return coco_show(dev, COCO_ATTR_SPDM_VERSIONS, buf);
}
static DEVICE_ATTR_RO(spdm_versions);

static ssize_t doe_features_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	return coco_show(dev, COCO_ATTR_DOE_FEATURES, buf);
}
static DEVICE_ATTR_RO(doe_features);

static ssize_t status_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return coco_show(dev, COCO_ATTR_STATUS, buf);
}
static DEVICE_ATTR_RO(status);

#define COCO_ATTR_RO(_name, _attr)					\
static ssize_t _name##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	return coco_show(dev, _attr, buf);				\
}									\
static DEVICE_ATTR_RO(_name)

COCO_ATTR_RO(auth_status, COCO_ATTR_AUTH_STATUS);
COCO_ATTR_RO(spdm_version, COCO_ATTR_SPDM_VERSION);
COCO_ATTR_RO(algorithms, COCO_ATTR_ALGORITHMS);
COCO_ATTR_RO(cert_slot, COCO_ATTR_CERT_SLOT);
COCO_ATTR_RO(challenge, COCO_ATTR_CHALLENGE);
COCO_ATTR_RO(cma_identity, COCO_ATTR_CMA_IDENTITY);
COCO_ATTR_RO(cma_identity_status, COCO_ATTR_CMA_IDENTITY_STATUS);
COCO_ATTR_RO(session_algorithms, COCO_ATTR_SESSION_ALGORITHMS);
COCO_ATTR_RO(session_version, COCO_ATTR_SESSION_VERSION);
COCO_ATTR_RO(session_handshake, COCO_ATTR_SESSION_HANDSHAKE);
COCO_ATTR_RO(session_heartbeat_period, COCO_ATTR_SESSION_HEARTBEAT_PERIOD);
COCO_ATTR_RO(session_messages, COCO_ATTR_SESSION_MESSAGES);
COCO_ATTR_RO(session_key_updates, COCO_ATTR_SESSION_KEY_UPDATES);
COCO_ATTR_RO(session_heartbeats, COCO_ATTR_SESSION_HEARTBEATS);
COCO_ATTR_RO(mailbox_owner, COCO_ATTR_MAILBOX_OWNER);
COCO_ATTR_RO(evidence_source, COCO_ATTR_EVIDENCE_SOURCE);
COCO_ATTR_RO(ide_stream_id, COCO_ATTR_IDE_STREAM_ID);
COCO_ATTR_RO(ide_state, COCO_ATTR_IDE_STATE);
COCO_ATTR_RO(ide_key_set, COCO_ATTR_IDE_KEY_SET);
COCO_ATTR_RO(ide_algorithm, COCO_ATTR_IDE_ALGORITHM);
COCO_ATTR_RO(ide_refreshes, COCO_ATTR_IDE_REFRESHES);

static ssize_t ide_show(struct device *dev, struct device_attribute *attr,
			char *buf)
{
	return coco_show(dev, COCO_ATTR_IDE, buf);
}

/*
 * "connect", "disconnect" or "refresh": the native IDE backend's stream for
 * the link, and a refresh of its keys.
 */
static ssize_t ide_store(struct device *dev, struct device_attribute *attr,
			 const char *buf, size_t count)
{
	int rc;

	if (sysfs_streq(buf, "connect"))
		rc = coco_rs_ide_op(dev, COCO_IDE_CONNECT);
	else if (sysfs_streq(buf, "disconnect"))
		rc = coco_rs_ide_op(dev, COCO_IDE_DISCONNECT);
	else if (sysfs_streq(buf, "refresh"))
		rc = coco_rs_ide_op(dev, COCO_IDE_REFRESH);
	else
		return -EINVAL;
	return rc ? rc : count;
}
static DEVICE_ATTR_RW(ide);

static ssize_t session_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	return coco_show(dev, COCO_ATTR_SESSION, buf);
}

/* "heartbeat", "key_update" or "end": one request inside the session. */
static ssize_t session_store(struct device *dev, struct device_attribute *attr,
			     const char *buf, size_t count)
{
	unsigned int op;
	int rc;

	if (sysfs_streq(buf, "heartbeat"))
		op = COCO_SESSION_HEARTBEAT;
	else if (sysfs_streq(buf, "key_update"))
		op = COCO_SESSION_KEY_UPDATE;
	else if (sysfs_streq(buf, "end"))
		op = COCO_SESSION_END;
	else
		return -EINVAL;
	rc = coco_rs_session_op(dev, op);
	return rc ? rc : count;
}
static DEVICE_ATTR_RW(session);

static ssize_t preferred_slot_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return coco_show(dev, COCO_ATTR_PREFERRED_SLOT, buf);
}

static ssize_t preferred_slot_store(struct device *dev,
				    struct device_attribute *attr,
				    const char *buf, size_t count)
{
	unsigned int slot;
	int rc;

	if (sysfs_streq(buf, "auto")) {
		rc = coco_rs_set_preferred_slot(dev, -1);
	} else {
		rc = kstrtouint(buf, 0, &slot);
		if (rc)
			return rc;
		if (slot >= COCO_SLOTS)
			return -EINVAL;
		rc = coco_rs_set_preferred_slot(dev, slot);
	}
	return rc ? rc : count;
}
static DEVICE_ATTR_RW(preferred_slot);

static ssize_t certificate_chain_read(struct file *filp, struct kobject *kobj,
				      const struct bin_attribute *attr,
				      char *buf, loff_t off, size_t count)
{
	return coco_rs_cert_chain_read(kobj_to_dev(kobj), buf, off, count);
}
static BIN_ATTR_RO(certificate_chain, 0);

static ssize_t rescan_store(struct device *dev, struct device_attribute *attr,
			    const char *buf, size_t count)
{
	bool val;
	int rc;

	rc = kstrtobool(buf, &val);
	if (rc)
		return rc;
	if (!val)
		return -EINVAL;
	rc = coco_rs_rescan(dev);
	return rc ? rc : count;
}
static DEVICE_ATTR_WO(rescan);

static struct attribute *coco_attrs[] = {
	&dev_attr_spdm_versions.attr,
	&dev_attr_doe_features.attr,
	&dev_attr_status.attr,
	&dev_attr_rescan.attr,
	&dev_attr_auth_status.attr,
	&dev_attr_spdm_version.attr,
	&dev_attr_algorithms.attr,
	&dev_attr_cert_slot.attr,
	&dev_attr_challenge.attr,
	&dev_attr_preferred_slot.attr,
	&dev_attr_cma_identity.attr,
	&dev_attr_cma_identity_status.attr,
	&dev_attr_session.attr,
	&dev_attr_session_algorithms.attr,
	&dev_attr_mailbox_owner.attr,
	&dev_attr_evidence_source.attr,
	&dev_attr_session_version.attr,
	&dev_attr_session_handshake.attr,
	&dev_attr_session_heartbeat_period.attr,
	&dev_attr_session_messages.attr,
	&dev_attr_session_key_updates.attr,
	&dev_attr_session_heartbeats.attr,
	&dev_attr_ide.attr,
	&dev_attr_ide_stream_id.attr,
	&dev_attr_ide_state.attr,
	&dev_attr_ide_key_set.attr,
	&dev_attr_ide_algorithm.attr,
	&dev_attr_ide_refreshes.attr,
	NULL,
};

static const struct bin_attribute *const coco_bin_attrs[] = {
	&bin_attr_certificate_chain,
	NULL,
};

static const struct attribute_group coco_group = {
	.name = "coco",
	.attrs = coco_attrs,
	.bin_attrs = coco_bin_attrs,
};

/*
 * certificates/slot0..7: the DER certificates of each populated slot's chain,
 * as the device sent them. Only populated slots are visible.
 */
static ssize_t coco_slot_read(struct kobject *kobj, unsigned int slot,
			      char *buf, loff_t off, size_t count)
{
	return coco_rs_slot_read(kobj_to_dev(kobj), slot, buf, off, count);
}

#define COCO_SLOT_ATTR(n)						\
static ssize_t slot##n##_read(struct file *filp, struct kobject *kobj,	\
			      const struct bin_attribute *attr,		\
			      char *buf, loff_t off, size_t count)	\
{									\
	return coco_slot_read(kobj, n, buf, off, count);		\
}									\
static const BIN_ATTR_RO(slot##n, 0)

COCO_SLOT_ATTR(0);
COCO_SLOT_ATTR(1);
COCO_SLOT_ATTR(2);
COCO_SLOT_ATTR(3);
COCO_SLOT_ATTR(4);
COCO_SLOT_ATTR(5);
COCO_SLOT_ATTR(6);
COCO_SLOT_ATTR(7);

static const struct bin_attribute *const coco_cert_attrs[] = {
	&bin_attr_slot0, &bin_attr_slot1, &bin_attr_slot2, &bin_attr_slot3,
	&bin_attr_slot4, &bin_attr_slot5, &bin_attr_slot6, &bin_attr_slot7,
	NULL,
};

static umode_t coco_cert_visible(struct kobject *kobj,
				 const struct bin_attribute *attr, int n)
{
	if (n < 0 || n >= COCO_SLOTS)
		return 0;
	return coco_rs_slot_populated(kobj_to_dev(kobj), n) ? attr->attr.mode : 0;
}

static const struct attribute_group coco_cert_group = {
	.name = "certificates",
	.bin_attrs = coco_cert_attrs,
	.is_bin_visible = coco_cert_visible,
};

/*
 * TDISP, for functions with the TEE-IO bit: "tdisp" in the device directory
 * (the state; root writes bind, start or unbind) and tdi/ (the interface
 * report of the bound TDI and its parts, the reason of the last failure).
 */
static ssize_t tdisp_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return coco_show(dev, COCO_ATTR_TDISP, buf);
}

static ssize_t tdisp_store(struct device *dev, struct device_attribute *attr,
			   const char *buf, size_t count)
{
	int rc;

	if (sysfs_streq(buf, "bind"))
		rc = coco_rs_tdisp_op(dev, COCO_TDISP_BIND);
	else if (sysfs_streq(buf, "start"))
		rc = coco_rs_tdisp_op(dev, COCO_TDISP_START);
	else if (sysfs_streq(buf, "unbind"))
		rc = coco_rs_tdisp_op(dev, COCO_TDISP_UNBIND);
	else if (sysfs_streq(buf, "accept"))
		rc = coco_rs_tdisp_op(dev, COCO_TDISP_ACCEPT);
	else
		return -EINVAL;
	return rc ? rc : count;
}
static DEVICE_ATTR_RW(tdisp);

static bool coco_tee_io(struct kobject *kobj)
{
	struct device *dev = kobj_to_dev(kobj);

	return dev_is_pci(dev) && (to_pci_dev(dev)->devcap & PCI_EXP_DEVCAP_TEE);
}

static umode_t coco_tdisp_visible(struct kobject *kobj, struct attribute *a,
				  int n)
{
	return coco_tee_io(kobj) ? a->mode : 0;
}

static umode_t coco_tdi_bin_visible(struct kobject *kobj,
				    const struct bin_attribute *a, int n)
{
	return coco_tee_io(kobj) ? a->attr.mode : 0;
}

static struct attribute *coco_tdisp_attrs[] = {
	&dev_attr_tdisp.attr,
	NULL,
};

static const struct attribute_group coco_tdisp_group = {
	.attrs = coco_tdisp_attrs,
	.is_visible = coco_tdisp_visible,
};

#define COCO_TDI_ATTR(_name, _attr)					\
static ssize_t tdi_##_name##_show(struct device *dev,			\
				  struct device_attribute *attr, char *buf) \
{									\
	return coco_show(dev, _attr, buf);				\
}									\
static struct device_attribute dev_attr_tdi_##_name =			\
	__ATTR(_name, 0444, tdi_##_name##_show, NULL)

COCO_TDI_ATTR(interface_info, COCO_ATTR_TDI_INTERFACE_INFO);
COCO_TDI_ATTR(lock_flags, COCO_ATTR_TDI_LOCK_FLAGS);
COCO_TDI_ATTR(mmio_ranges, COCO_ATTR_TDI_MMIO_RANGES);
COCO_TDI_ATTR(error, COCO_ATTR_TDI_ERROR);

static ssize_t tdi_report_read(struct file *filp, struct kobject *kobj,
			       const struct bin_attribute *attr, char *buf,
			       loff_t off, size_t count)
{
	return coco_rs_tdi_report_read(kobj_to_dev(kobj), buf, off, count);
}
static const struct bin_attribute tdi_bin_report =
	__BIN_ATTR(report, 0444, tdi_report_read, NULL, 0);

static struct attribute *coco_tdi_attrs[] = {
	&dev_attr_tdi_interface_info.attr,
	&dev_attr_tdi_lock_flags.attr,
	&dev_attr_tdi_mmio_ranges.attr,
	&dev_attr_tdi_error.attr,
	NULL,
};

static const struct bin_attribute *const coco_tdi_bin_attrs[] = {
	&tdi_bin_report,
	NULL,
};

static const struct attribute_group coco_tdi_group = {
	.name = "tdi",
	.attrs = coco_tdi_attrs,
	.bin_attrs = coco_tdi_bin_attrs,
	.is_visible = coco_tdisp_visible,
	.is_bin_visible = coco_tdi_bin_visible,
};

static const struct attribute_group coco_meas_group;

static const struct attribute_group *const coco_groups[] = {
	&coco_group,
	&coco_cert_group,
	&coco_meas_group,
	&coco_tdisp_group,
	&coco_tdi_group,
	NULL,
};

int coco_sysfs_add(struct device *dev)
{
	return sysfs_create_groups(&dev->kobj, coco_groups);
}

void coco_sysfs_remove(struct device *dev)
{
	sysfs_remove_groups(&dev->kobj, coco_groups);
}

/* Shows the slots populated after an authentication, hides the others. */
void coco_sysfs_update_certificates(struct device *dev)
{
	int rc = sysfs_update_group(&dev->kobj, &coco_cert_group);

	if (rc && rc != -EINVAL)
		dev_warn(dev, "coco: cannot update certificates/: %d\n", rc);
}

/*
 * measurements/: a named attribute group with the evidence of the last
 * reading, and three files per measurement block, named by its index:
 * <index>_type, <index>_format, <index>_value, added to the group and
 * removed from it as the blocks of the last reading change
 * (coco_sysfs_block_files()). File by file: updating the whole group would
 * remove and re-add the refresh file whose writer causes the change.
 */
static ssize_t coco_meas_attr_show(struct device *dev, enum coco_meas_attr attr,
				   char *buf)
{
	return coco_rs_meas_show(dev, attr, buf, PAGE_SIZE);
}

#define COCO_MEAS_RO(_name, _attr)					\
static ssize_t meas_##_name##_show(struct device *dev,			\
				   struct device_attribute *attr,	\
				   char *buf)				\
{									\
	return coco_meas_attr_show(dev, _attr, buf);			\
}									\
static struct device_attribute meas_attr_##_name =			\
	__ATTR(_name, 0444, meas_##_name##_show, NULL)

COCO_MEAS_RO(status, COCO_MEAS_STATUS);
COCO_MEAS_RO(stale, COCO_MEAS_STALE);
COCO_MEAS_RO(timestamp, COCO_MEAS_TIMESTAMP);
COCO_MEAS_RO(fresh_capable, COCO_MEAS_FRESH_CAPABLE);
COCO_MEAS_RO(spdm_version, COCO_MEAS_SPDM_VERSION);
COCO_MEAS_RO(hash_algorithm, COCO_MEAS_HASH_ALGORITHM);
COCO_MEAS_RO(signature_algorithm, COCO_MEAS_SIGNATURE_ALGORITHM);
COCO_MEAS_RO(slot, COCO_MEAS_SLOT);

static ssize_t meas_nonce_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return coco_meas_attr_show(dev, COCO_MEAS_NONCE, buf);
}

/* 64 hexadecimal digits: the nonce of the next signed GET_MEASUREMENTS. */
static ssize_t meas_nonce_store(struct device *dev,
				struct device_attribute *attr, const char *buf,
				size_t count)
{
	u8 nonce[32];
	size_t len = count;
	int rc;

	if (len && buf[len - 1] == '\n')
		len--;
	if (len != 2 * sizeof(nonce))
		return -EINVAL;
	if (hex2bin(nonce, buf, sizeof(nonce)))
		return -EINVAL;
	rc = coco_rs_meas_set_nonce(dev, nonce);
	memzero_explicit(nonce, sizeof(nonce));
	return rc ? rc : count;
}
static struct device_attribute meas_attr_nonce =
	__ATTR(nonce, 0644, meas_nonce_show, meas_nonce_store);

static ssize_t meas_refresh_store(struct device *dev,
				  struct device_attribute *attr,
				  const char *buf, size_t count)
{
	bool val;
	int rc;

	rc = kstrtobool(buf, &val);
	if (rc)
		return rc;
	if (!val)
		return -EINVAL;
	rc = coco_rs_meas_refresh(dev);
	return rc ? rc : count;
}
static struct device_attribute meas_attr_refresh =
	__ATTR(refresh, 0200, NULL, meas_refresh_store);

static struct attribute *coco_meas_attrs[] = {
	&meas_attr_status.attr,
	&meas_attr_stale.attr,
	&meas_attr_timestamp.attr,
	&meas_attr_fresh_capable.attr,
	&meas_attr_spdm_version.attr,
	&meas_attr_hash_algorithm.attr,
	&meas_attr_signature_algorithm.attr,
	&meas_attr_slot.attr,
	&meas_attr_nonce.attr,
	&meas_attr_refresh.attr,
	NULL,
};

#define COCO_BLOCK_FIELDS	3	/* type, format, value (enum coco_block_attr) */
#define COCO_BLOCK_FIRST	1
#define COCO_BLOCK_LAST		254
#define COCO_BLOCKS		(COCO_BLOCK_LAST - COCO_BLOCK_FIRST + 1)

/* <index>_<field>: one file of one block. */
struct coco_block_file {
	struct device_attribute dattr;
	u8 index;
	u8 field;
	char name[16];
};

static ssize_t coco_block_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	struct coco_block_file *b = container_of(attr, struct coco_block_file, dattr);

	return coco_rs_block_show(dev, b->index, b->field, buf, PAGE_SIZE);
}

/* Every block file of every index, built by coco_sysfs_init(). */
static struct coco_block_file *coco_block_attrs;

static ssize_t meas_transcript_read(struct file *filp, struct kobject *kobj,
				    const struct bin_attribute *attr,
				    char *buf, loff_t off, size_t count)
{
	return coco_rs_meas_read(kobj_to_dev(kobj), COCO_MEAS_TRANSCRIPT,
				 buf, off, count);
}

static ssize_t meas_signature_read(struct file *filp, struct kobject *kobj,
				   const struct bin_attribute *attr,
				   char *buf, loff_t off, size_t count)
{
	return coco_rs_meas_read(kobj_to_dev(kobj), COCO_MEAS_SIGNATURE,
				 buf, off, count);
}

static const struct bin_attribute meas_bin_transcript =
	__BIN_ATTR(transcript, 0444, meas_transcript_read, NULL, 0);
static const struct bin_attribute meas_bin_signature =
	__BIN_ATTR(signature, 0444, meas_signature_read, NULL, 0);

static const struct bin_attribute *const coco_meas_bin_attrs[] = {
	&meas_bin_transcript,
	&meas_bin_signature,
	NULL,
};

static const struct attribute_group coco_meas_group = {
	.name = "measurements",
	.attrs = coco_meas_attrs,
	.bin_attrs = coco_meas_bin_attrs,
};

static const char *const coco_block_fields[COCO_BLOCK_FIELDS] = {
	[COCO_BLOCK_TYPE] = "type",
	[COCO_BLOCK_FORMAT] = "format",
	[COCO_BLOCK_VALUE] = "value",
};

int coco_sysfs_init(void)
{
	unsigned int i;

	coco_block_attrs = kcalloc(COCO_BLOCKS * COCO_BLOCK_FIELDS,
				   sizeof(*coco_block_attrs), GFP_KERNEL);
	if (!coco_block_attrs)
		return -ENOMEM;
	for (i = 0; i < COCO_BLOCKS * COCO_BLOCK_FIELDS; i++) {
		struct coco_block_file *b = &coco_block_attrs[i];

		b->index = COCO_BLOCK_FIRST + i / COCO_BLOCK_FIELDS;
		b->field = i % COCO_BLOCK_FIELDS;
		snprintf(b->name, sizeof(b->name), "%u_%s", b->index,
			 coco_block_fields[b->field]);
		sysfs_attr_init(&b->dattr.attr);
		b->dattr.attr.name = b->name;
		b->dattr.attr.mode = 0444;
		b->dattr.show = coco_block_show;
	}
	return 0;
}

void coco_sysfs_exit(void)
{
	kfree(coco_block_attrs);
	coco_block_attrs = NULL;
}

/*
 * Adds (@add) or removes the files of block @index to measurements/. Callers
 * serialise the calls of a device; the files go with the group on removal.
 */
int coco_sysfs_block_files(struct device *dev, unsigned int index, bool add)
{
	unsigned int f;
	int rc = 0;

	if (!coco_block_attrs || index < COCO_BLOCK_FIRST || index > COCO_BLOCK_LAST)
		return -EINVAL;
	for (f = 0; f < COCO_BLOCK_FIELDS; f++) {
		struct coco_block_file *b =
			&coco_block_attrs[(index - COCO_BLOCK_FIRST) * COCO_BLOCK_FIELDS + f];

		if (add) {
			rc = sysfs_add_file_to_group(&dev->kobj, &b->dattr.attr,
						     coco_meas_group.name);
			if (rc)
				break;
		} else {
			sysfs_remove_file_from_group(&dev->kobj, &b->dattr.attr,
						     coco_meas_group.name);
		}
	}
	if (rc) {
		while (f--)
			sysfs_remove_file_from_group(&dev->kobj,
				&coco_block_attrs[(index - COCO_BLOCK_FIRST) * COCO_BLOCK_FIELDS + f].dattr.attr,
				coco_meas_group.name);
		dev_warn(dev, "coco: cannot add the files of measurement block %u: %d\n",
			 index, rc);
	}
	return rc;
}
