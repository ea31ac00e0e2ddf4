// SPDX-License-Identifier: GPL-2.0
/*
 * sysfs attribute group of coco.ko: /sys/bus/pci/devices/<BDF>/coco/
 * (see Documentation/ABI/testing/sysfs-bus-pci-coco).
 *
 * Reads only report what the last protocol run stored; they never cause
 * device traffic. Writes are root-only (mode 0200) and run the protocol
 * synchronously.
 */
#include <linux/device.h>
#include <linux/kstrtox.h>
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
 * authenticated: in the device's own directory, as the PCI core's CMA
 * proposal puts it. 0644: root writes to re-authenticate.
 */
static ssize_t authenticated_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	return coco_show(dev, COCO_ATTR_AUTHENTICATED, buf);
}

static ssize_t authenticated_store(struct device *dev,
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
	rc = coco_rs_authenticate(dev);
	return rc ? rc : count;
}
static DEVICE_ATTR_RW(authenticated);

static struct attribute *coco_dev_attrs[] = {
	&dev_attr_authenticated.attr,
	NULL,
};

static const struct attribute_group coco_dev_group = {
	.attrs = coco_dev_attrs,
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

static const struct attribute_group *const coco_groups[] = {
	&coco_group,
	&coco_dev_group,
	&coco_cert_group,
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
