// SPDX-License-Identifier: GPL-2.0
/*
 * coco.ko in a confidential guest: the emulated guest-to-TSM channel
 * (Documentation/coco/sev-tio-guest.rst), a PCI function (vendor AMD, device
 * 0xC0C1) that carries SEV-TIO guest messages and TIO_OP requests to the
 * platform's TSM. On hardware the same messages travel through the SNP guest
 * request path (snp_send_guest_request(), encrypted with the VMPCK); the Rust
 * side (guest/channel.rs) sees both behind one trait.
 *
 * The request and response pages and the data pages are DMA buffers of this
 * function. The data pages are what the host may read and write: their
 * contents are checked against the digests of the (trusted) response.
 */
#include <linux/dma-mapping.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>

#include "coco.h"

#define CHAN_BAR		0
#define CHAN_EXIT_CODE		0x00
#define CHAN_REQ_LO		0x08
#define CHAN_REQ_HI		0x0c
#define CHAN_RSP_LO		0x10
#define CHAN_RSP_HI		0x14
#define CHAN_DATA_LO		0x18
#define CHAN_DATA_HI		0x1c
#define CHAN_DATA_NPAGES	0x20
#define CHAN_SBDF		0x24
#define CHAN_PARAM_LO		0x28
#define CHAN_PARAM_HI		0x2c
#define CHAN_DOORBELL		0x30
#define CHAN_RESULT		0x34
#define CHAN_FW_ERR_LO		0x38
#define CHAN_FW_ERR_HI		0x3c
#define CHAN_REGS_SIZE		0x40

/* The most data pages the guest lends the host for one request. */
#define CHAN_DATA_MAX_PAGES	64

struct coco_guest_chan {
	struct pci_dev *pdev;
	void __iomem *regs;
	void *req, *rsp;
	dma_addr_t req_dma, rsp_dma;
};

/* The channel (one per guest); calls are serialised, like the SNP request path. */
static DEFINE_MUTEX(chan_lock);
static struct coco_guest_chan *chan;

bool coco_guest_chan_present(void)
{
	guard(mutex)(&chan_lock);
	return chan;
}

static void chan_write64(struct coco_guest_chan *c, unsigned int lo, u64 v)
{
	iowrite32(lower_32_bits(v), c->regs + lo);
	iowrite32(upper_32_bits(v), c->regs + lo + 4);
}

static u64 chan_read64(struct coco_guest_chan *c, unsigned int lo)
{
	return ioread32(c->regs + lo) |
	       ((u64)ioread32(c->regs + lo + 4) << 32);
}

/**
 * coco_guest_chan_call() - one TIO_GUEST_REQUEST or TIO_OP
 * @call: the request (see coco.h); its out fields are set on return 0
 *
 * Return: 0 with @call->result set (0 done, 1 data pages too few, 2 the
 * firmware refused, 3 malformed, 0xffff no firmware), -ENODEV without a
 * channel, -EINVAL for sizes out of range, -ENOMEM.
 */
int coco_guest_chan_call(struct coco_guest_call *call)
{
	struct coco_guest_chan *c;
	dma_addr_t data_dma = 0;
	size_t data_size;
	void *data = NULL;

	if (call->req_len > PAGE_SIZE || call->rsp_len > PAGE_SIZE ||
	    call->data_npages > CHAN_DATA_MAX_PAGES ||
	    (call->data_npages && !call->data))
		return -EINVAL;
	data_size = (size_t)call->data_npages << PAGE_SHIFT;

	guard(mutex)(&chan_lock);
	c = chan;
	if (!c)
		return -ENODEV;
	if (data_size) {
		data = dma_alloc_coherent(&c->pdev->dev, data_size, &data_dma,
					  GFP_KERNEL);
		if (!data)
			return -ENOMEM;
		memcpy(data, call->data, min(call->data_in_len, data_size));
	}
	memset(c->req, 0, PAGE_SIZE);
	memset(c->rsp, 0, PAGE_SIZE);
	if (call->req_len)
		memcpy(c->req, call->req, call->req_len);

	iowrite32(call->exit_code, c->regs + CHAN_EXIT_CODE);
	chan_write64(c, CHAN_REQ_LO, c->req_dma);
	chan_write64(c, CHAN_RSP_LO, c->rsp_dma);
	chan_write64(c, CHAN_DATA_LO, data_dma);
	iowrite32(call->data_npages, c->regs + CHAN_DATA_NPAGES);
	iowrite32(call->sbdf, c->regs + CHAN_SBDF);
	chan_write64(c, CHAN_PARAM_LO, call->param);
	/* Runs the request: the device answers inside the write. */
	iowrite32(1, c->regs + CHAN_DOORBELL);

	call->result = ioread32(c->regs + CHAN_RESULT);
	call->param = chan_read64(c, CHAN_PARAM_LO);
	call->fw_err = chan_read64(c, CHAN_FW_ERR_LO);
	call->data_npages_out = ioread32(c->regs + CHAN_DATA_NPAGES);
	if (call->rsp_len)
		memcpy(call->rsp, c->rsp, call->rsp_len);
	if (data) {
		memcpy(call->data, data, data_size);
		dma_free_coherent(&c->pdev->dev, data_size, data, data_dma);
	}
	return 0;
}

static int coco_guest_chan_probe(struct pci_dev *pdev,
				 const struct pci_device_id *id)
{
	struct coco_guest_chan *c;
	int rc;

	c = devm_kzalloc(&pdev->dev, sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	c->pdev = pdev;
	rc = pcim_enable_device(pdev);
	if (rc)
		return rc;
	if (pci_resource_len(pdev, CHAN_BAR) < CHAN_REGS_SIZE) {
		pci_err(pdev, "coco: the guest channel's BAR %d is too small\n",
			CHAN_BAR);
		return -ENODEV;
	}
	c->regs = pcim_iomap_region(pdev, CHAN_BAR, "coco-guest");
	if (IS_ERR(c->regs))
		return PTR_ERR(c->regs);
	rc = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(52));
	if (rc)
		return rc;
	c->req = dmam_alloc_coherent(&pdev->dev, PAGE_SIZE, &c->req_dma,
				     GFP_KERNEL);
	c->rsp = dmam_alloc_coherent(&pdev->dev, PAGE_SIZE, &c->rsp_dma,
				     GFP_KERNEL);
	if (!c->req || !c->rsp)
		return -ENOMEM;
	pci_set_master(pdev);
	pci_set_drvdata(pdev, c);
	scoped_guard(mutex, &chan_lock) {
		if (chan) {
			pci_warn(pdev, "coco: a guest channel is in use already\n");
			return -EBUSY;
		}
		chan = c;
	}
	pci_info(pdev, "coco: guest-to-TSM channel (SEV-TIO guest messages)\n");
	return 0;
}

static void coco_guest_chan_remove(struct pci_dev *pdev)
{
	struct coco_guest_chan *c = pci_get_drvdata(pdev);

	scoped_guard(mutex, &chan_lock) {
		if (chan == c)
			chan = NULL;
	}
	pci_clear_master(pdev);
}

static const struct pci_device_id coco_guest_chan_ids[] = {
	/* The rig's emulated guest channel (not a device on hardware). */
	{ PCI_VDEVICE(AMD, 0xc0c1) },
	{ }
};
MODULE_DEVICE_TABLE(pci, coco_guest_chan_ids);

static struct pci_driver coco_guest_chan_driver = {
	.name = "coco-guest-channel",
	.id_table = coco_guest_chan_ids,
	.probe = coco_guest_chan_probe,
	.remove = coco_guest_chan_remove,
};

int coco_guest_chan_register(void)
{
	return pci_register_driver(&coco_guest_chan_driver);
}

void coco_guest_chan_unregister(void)
{
	pci_unregister_driver(&coco_guest_chan_driver);
}
