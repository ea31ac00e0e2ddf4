// SPDX-License-Identifier: GPL-2.0
/*
 * sev_tio.ko, C part: what the Rust core (sev_tio.rs) cannot express or
 * reach. The PCI driver of the rig's emulated PSP (vendor AMD, device 0xC0C0,
 * Documentation/coco/sev-tio-platform.rst), whose BAR 2 holds a version 2 SEV
 * mailbox; buffers the PSP addresses; sev_do_cmd(), the ccp driver's mailbox
 * on hardware; PCI helpers that are static inlines.
 */
#include <linux/bitfield.h>
#include <linux/dma-mapping.h>
#include <linux/io.h>
#include <linux/iopoll.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/psp-sev.h>

#include "tio.h"

#define TIO_PSP_BAR		2
#define TIO_PSP_BAR_SIZE	0x100000
/* The version 2 SEV mailbox (as sev-dev.c's sevv2 offsets). */
#define SEV_CMDRESP		0x10980
#define SEV_CMDBUFF_LO		0x109e0
#define SEV_CMDBUFF_HI		0x109e4
#define SEV_CMDRESP_CMD		GENMASK(26, 16)
#define SEV_CMDRESP_RESP	BIT(31)
/* The longest a command may take (the ccp driver's default is 100 s). */
#define TIO_CMD_TIMEOUT_US	(30 * USEC_PER_SEC)

struct tio_psp {
	struct pci_dev *pdev;
	void __iomem *regs;
};

int tio_psp_cmd(struct tio_psp *psp, u16 cmd, u64 buf, u32 *reg)
{
	u32 val;
	int rc;

	iowrite32(lower_32_bits(buf), psp->regs + SEV_CMDBUFF_LO);
	iowrite32(upper_32_bits(buf), psp->regs + SEV_CMDBUFF_HI);
	/* No IOC: completion is polled, as the ccp driver does without IRQs. */
	iowrite32(FIELD_PREP(SEV_CMDRESP_CMD, cmd), psp->regs + SEV_CMDRESP);
	rc = read_poll_timeout(ioread32, val, val & SEV_CMDRESP_RESP, 10,
			       TIO_CMD_TIMEOUT_US, false,
			       psp->regs + SEV_CMDRESP);
	*reg = val;
	return rc;
}

void *tio_buf_alloc(struct tio_psp *psp, size_t size, u64 *addr)
{
	dma_addr_t dma;
	void *p;

	if (psp) {
		p = dma_alloc_coherent(&psp->pdev->dev, size, &dma, GFP_KERNEL);
		*addr = dma;
		return p;
	}
	p = alloc_pages_exact(size, GFP_KERNEL | __GFP_ZERO);
	*addr = p ? __pa(p) : 0;
	return p;
}

void tio_buf_free(struct tio_psp *psp, size_t size, void *cpu, u64 addr)
{
	if (psp)
		dma_free_coherent(&psp->pdev->dev, size, cpu, addr);
	else
		free_pages_exact(cpu, size);
}

int tio_sev_do_cmd(u16 cmd, void *data, int *psp_ret)
{
	*psp_ret = 0;
#if IS_ENABLED(CONFIG_CRYPTO_DEV_SP_PSP)
	return sev_do_cmd(cmd, data, psp_ret);
#else
	return -ENODEV;
#endif
}

u16 tio_pci_rid(struct device *dev)
{
	return pci_dev_id(to_pci_dev(dev));
}

u16 tio_pci_segment(struct device *dev)
{
	return pci_domain_nr(to_pci_dev(dev)->bus);
}

int tio_root_port_number(struct device *dev)
{
	struct pci_dev *rp = pcie_find_root_port(to_pci_dev(dev));
	u32 lnkcap;
	int rc;

	if (!rp)
		return -ENODEV;
	rc = pcie_capability_read_dword(rp, PCI_EXP_LNKCAP, &lnkcap);
	if (rc)
		return -EIO;
	return FIELD_GET(PCI_EXP_LNKCAP_PN, lnkcap);
}

static int tio_psp_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct tio_psp *psp;
	int rc;

	psp = devm_kzalloc(&pdev->dev, sizeof(*psp), GFP_KERNEL);
	if (!psp)
		return -ENOMEM;
	psp->pdev = pdev;
	rc = pcim_enable_device(pdev);
	if (rc)
		return rc;
	if (pci_resource_len(pdev, TIO_PSP_BAR) < TIO_PSP_BAR_SIZE) {
		dev_err(&pdev->dev, "sev-tio: BAR %d is smaller than the SEV mailbox\n",
			TIO_PSP_BAR);
		return -ENODEV;
	}
	psp->regs = pcim_iomap_region(pdev, TIO_PSP_BAR, "sev-tio");
	if (IS_ERR(psp->regs))
		return PTR_ERR(psp->regs);
	rc = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(52));
	if (rc)
		return rc;
	pci_set_master(pdev);
	pci_set_drvdata(pdev, psp);
	return tio_rs_psp_attach(psp, &pdev->dev);
}

static void tio_psp_remove(struct pci_dev *pdev)
{
	tio_rs_psp_detach(pci_get_drvdata(pdev));
}

static const struct pci_device_id tio_psp_ids[] = {
	/* The rig's emulated PSP: an ID the ccp driver does not claim. */
	{ PCI_VDEVICE(AMD, 0xc0c0) },
	{ }
};
MODULE_DEVICE_TABLE(pci, tio_psp_ids);

static struct pci_driver tio_psp_driver = {
	.name = "sev-tio-psp",
	.id_table = tio_psp_ids,
	.probe = tio_psp_probe,
	.remove = tio_psp_remove,
};

int tio_psp_register(void)
{
	return pci_register_driver(&tio_psp_driver);
}

void tio_psp_unregister(void)
{
	pci_unregister_driver(&tio_psp_driver);
}
