/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between the Rust core of sev_tio.ko (sev_tio.rs) and its C part
 * (tio_psp.c): the PCI driver of the emulated PSP and its SEV mailbox
 * registers, DMA buffers, sev_do_cmd() on hardware, and the few PCI helpers
 * that are static inlines. The Rust side declares these in an extern block and
 * defines the tio_rs_* callbacks: keep both in sync with this file.
 */
#ifndef _DRIVERS_CRYPTO_CCP_TIO_H
#define _DRIVERS_CRYPTO_CCP_TIO_H

#include <linux/types.h>

struct device;
struct tio_psp;

/* The emulated PSP's PCI driver. */
int tio_psp_register(void);
void tio_psp_unregister(void);

/*
 * Runs command @cmd on the command buffer at bus address @buf: 0 with the
 * cmdresp register in @reg (bit 31 set), or -ETIMEDOUT.
 */
int tio_psp_cmd(struct tio_psp *psp, u16 cmd, u64 buf, u32 *reg);

/*
 * Buffers the PSP reaches by address: coherent DMA memory of @psp's device, or
 * (@psp NULL) pages whose physical address is given to sev_do_cmd().
 */
void *tio_buf_alloc(struct tio_psp *psp, size_t size, u64 *addr);
void tio_buf_free(struct tio_psp *psp, size_t size, void *cpu, u64 addr);

/*
 * sev_do_cmd() of the ccp driver: 0, or a negative errno with the firmware
 * status in @psp_ret (0 if the command did not reach the firmware). -ENODEV
 * when the kernel has no PSP driver or no PSP.
 */
int tio_sev_do_cmd(u16 cmd, void *data, int *psp_ret);

/* PCI helpers: the function's Requester ID and segment, its root port's Port Number. */
u16 tio_pci_rid(struct device *dev);
u16 tio_pci_segment(struct device *dev);
int tio_root_port_number(struct device *dev);

/* Rust part, called from the PCI driver. */
int tio_rs_psp_attach(struct tio_psp *psp, struct device *dev);
void tio_rs_psp_detach(struct tio_psp *psp);

#endif
