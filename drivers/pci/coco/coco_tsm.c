// SPDX-License-Identifier: GPL-2.0
/*
 * coco.ko and the PCI core's device security interfaces (drivers/pci/tsm.c):
 *
 *  - the native CMA-SPDM authentication provider (pci_cma_register()): the
 *    PCI core's 'authenticated' attribute shows coco.ko's result for every
 *    function with a CMA/SPDM mailbox, and a write authenticates again;
 *  - ide_policy=block and panic: the driver core's gate (driver_override),
 *    and the panic;
 *  - a locked TDI: the PCI core's probe refusal (pci_set_probe_refusal()).
 *
 * Static operation tables are what this C part holds; the work is done by
 * the coco_rs_* callbacks (coco_main.rs). The native backend as a link TSM
 * is registered from Rust (kernel::pci::tsm, coco_main.rs).
 */
#include <linux/device.h>
#include <linux/pci.h>
#include <linux/pci-tsm.h>
#include <linux/slab.h>

#include "coco.h"
#include "coco_backend.h"

static bool coco_cma_authenticated(struct pci_dev *pdev)
{
	return coco_rs_authenticated(&pdev->dev);
}

static int coco_cma_authenticate(struct pci_dev *pdev)
{
	return coco_rs_authenticate(&pdev->dev);
}

static const struct pci_cma_ops coco_cma_ops = {
	.authenticated = coco_cma_authenticated,
	.authenticate = coco_cma_authenticate,
};

static bool coco_cma_registered;

/*
 * Called once coco.ko tracks the devices (the callbacks find them). Failing
 * leaves coco.ko working without the PCI core's 'authenticated' (logged).
 */
void coco_tsm_init(void)
{
	int rc;

	rc = pci_cma_register(&coco_cma_ops);
	if (rc)
		pr_warn("coco: cannot provide 'authenticated' (%d): another CMA-SPDM provider is registered\n",
			rc);
	else
		coco_cma_registered = true;
}

/* Called on unload, after the native TSM is unregistered. */
void coco_tsm_exit(void)
{
	if (coco_cma_registered)
		pci_cma_unregister(&coco_cma_ops);
	coco_cma_registered = false;
}

/* The driver_override that keeps every driver away from a blocked function */
#define COCO_BLOCKED "coco-ide-blocked"

static bool coco_blocked(struct device *dev)
{
	guard(spinlock)(&dev->driver_override.lock);
	return dev->driver_override.name &&
	       !strcmp(dev->driver_override.name, COCO_BLOCKED);
}

/*
 * ide_policy=block: @block keeps every driver from binding to @dev (its
 * driver_override names no driver; a bound driver is unbound), until the
 * function is connected: then (!@block) the override coco.ko set is cleared
 * and the driver core attaches a driver again. An override someone else set
 * is left alone. Must not be called with coco.ko's locks held (unbinding
 * runs the driver's remove and the bus notifiers).
 */
int coco_block_drivers(struct device *dev, bool block)
{
	int rc;

	if (block) {
		rc = device_set_driver_override(dev, COCO_BLOCKED);
		if (rc)
			return rc;
		device_release_driver(dev);
		return 0;
	}
	if (!coco_blocked(dev))
		return 0;
	rc = device_set_driver_override(dev, "");
	if (rc)
		return rc;
	rc = device_attach(dev);
	return rc < 0 ? rc : 0;
}

/* Why no host driver may bind to a function whose TDI is locked */
static const char coco_tdi_locked[] =
	"its TDI is locked (TDISP): unbind it through tdisp first";

/*
 * TDISP: while a TDI is locked or running no host driver may bind to its
 * function: the PCI core's probe refusal (pci_set_probe_refusal()), which
 * logs the reason of a refused probe. COCO_TDI_GATE_HOLD sets it only when
 * no driver is bound (-EBUSY otherwise); COCO_TDI_GATE_HOLD_BOUND leaves the
 * bound driver (the VMM's, which asked through pci_tsm_bind()). The LIFT
 * operations clear the refusal coco.ko set (only that one); LIFT_ATTACH then
 * lets the driver core attach a driver. Must not be called with coco.ko's
 * locks held.
 */
int coco_tdi_gate(struct device *dev, unsigned int op)
{
	struct pci_dev *pdev;
	int rc;

	if (!dev_is_pci(dev))
		return -ENODEV;
	pdev = to_pci_dev(dev);
	switch (op) {
	case COCO_TDI_GATE_HOLD:
		return pci_set_probe_refusal(pdev, coco_tdi_locked, false);
	case COCO_TDI_GATE_HOLD_BOUND:
		return pci_set_probe_refusal(pdev, coco_tdi_locked, true);
	case COCO_TDI_GATE_UNACCEPTED:
		return pci_set_probe_refusal(pdev, pci_tee_not_accepted, false);
	case COCO_TDI_GATE_ACCEPT:
		if (READ_ONCE(pdev->probe_refusal) != coco_tdi_locked &&
		    READ_ONCE(pdev->probe_refusal) != pci_tee_not_accepted)
			return -EPERM;
		rc = pci_set_probe_refusal(pdev, NULL, false);
		if (rc)
			return rc;
		rc = device_attach(dev);
		return rc < 0 ? rc : 0;
	case COCO_TDI_GATE_LIFT:
	case COCO_TDI_GATE_LIFT_ATTACH:
		if (READ_ONCE(pdev->probe_refusal) != coco_tdi_locked)
			return 0;
		rc = pci_set_probe_refusal(pdev, NULL, false);
		if (rc || op == COCO_TDI_GATE_LIFT)
			return rc;
		rc = device_attach(dev);
		return rc < 0 ? rc : 0;
	default:
		return -EINVAL;
	}
}

/* pci=tee_accept: TEE-I/O functions wait for a confidential guest's acceptance */
bool coco_tee_accept_required(void)
{
	return pci_tee_accept_required();
}

/* ide_policy=panic: the administrator asked for it (the reason is logged) */
void coco_ide_panic(struct device *dev)
{
	panic("coco: %s: IDE setup failed with ide_policy=panic\n",
	      dev_name(dev));
}

/*
 * The API of coco_backend.h, for firmware TSM backends in other modules; the
 * work is done in Rust (backend.rs).
 */
int coco_rs_backend_claim(struct pci_dev *pdev, const char *tsm, void **out);
void coco_rs_backend_release(void *b);
ssize_t coco_rs_backend_relay(void *b, u8 type, const void *req,
			      size_t req_len, void *rsp, size_t rsp_len);
int coco_rs_backend_certificates(void *b, u8 slot, u32 base_hash,
				 const void *chain, size_t len);
int coco_rs_backend_measurements(void *b, u8 slot, u8 version, u32 base_asym,
				 u32 base_hash, const u8 *nonce,
				 const void *evidence, size_t len);

void coco_rs_backend_set_tdi_ops(void *b,
				 const struct coco_backend_tdi_ops *ops);

void coco_backend_set_tdi_ops(struct coco_backend *b,
			      const struct coco_backend_tdi_ops *ops)
{
	coco_rs_backend_set_tdi_ops(b, ops);
}
EXPORT_SYMBOL_GPL(coco_backend_set_tdi_ops);

int coco_backend_claim(struct pci_dev *pdev, const char *tsm,
		       struct coco_backend **out)
{
	void *b = NULL;
	int rc;

	might_sleep();
	rc = coco_rs_backend_claim(pdev, tsm, &b);
	*out = rc ? NULL : b;
	return rc;
}
EXPORT_SYMBOL_GPL(coco_backend_claim);

void coco_backend_release(struct coco_backend *b)
{
	coco_rs_backend_release(b);
}
EXPORT_SYMBOL_GPL(coco_backend_release);

ssize_t coco_backend_relay(struct coco_backend *b, u8 type, const void *req,
			   size_t req_len, void *rsp, size_t rsp_len)
{
	return coco_rs_backend_relay(b, type, req, req_len, rsp, rsp_len);
}
EXPORT_SYMBOL_GPL(coco_backend_relay);

int coco_backend_certificates(struct coco_backend *b, u8 slot, u32 base_hash,
			      const void *chain, size_t len)
{
	return coco_rs_backend_certificates(b, slot, base_hash, chain, len);
}
EXPORT_SYMBOL_GPL(coco_backend_certificates);

int coco_backend_measurements(struct coco_backend *b, u8 slot, u8 version,
			      u32 base_asym, u32 base_hash, const u8 nonce[32],
			      const void *evidence, size_t len)
{
	return coco_rs_backend_measurements(b, slot, version, base_asym,
					    base_hash, nonce, evidence, len);
}
EXPORT_SYMBOL_GPL(coco_backend_measurements);
