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

int coco_sysfs_add(struct device *dev)
{
	return sysfs_create_group(&dev->kobj, &coco_group);
}

void coco_sysfs_remove(struct device *dev)
{
	sysfs_remove_group(&dev->kobj, &coco_group);
}
