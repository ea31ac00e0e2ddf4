/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What coco.ko offers firmware TSM backends (a TSM whose firmware runs SPDM
 * itself, such as AMD's PSP under SEV-TIO): the device's DOE mailbox, relayed,
 * and the device's certificates/ and measurements/ files for the evidence the
 * firmware returns. See Documentation/coco/architecture.rst.
 *
 * coco_backend_claim() ends coco.ko's own session with the device and hands
 * the mailbox to the TSM: coco.ko sends nothing of its own until
 * coco_backend_release(), after which it authenticates the device again and
 * shows its own evidence. A claim must be released before its device is
 * released by its caller; every call may sleep.
 */
#ifndef _DRIVERS_PCI_COCO_BACKEND_H
#define _DRIVERS_PCI_COCO_BACKEND_H

#include <linux/types.h>

struct pci_dev;
struct coco_backend;

/* 0, -ENODEV (no CMA/SPDM mailbox coco.ko tracks), -EBUSY (owned, in use). */
int coco_backend_claim(struct pci_dev *pdev, const char *tsm,
		       struct coco_backend **out);
void coco_backend_release(struct coco_backend *b);

/*
 * One data object: type 1 (CMA/SPDM) or 2 (secured CMA/SPDM). Returns the
 * response's length or a negative errno (the reason is logged).
 */
ssize_t coco_backend_relay(struct coco_backend *b, u8 type, const void *req,
			   size_t req_len, void *rsp, size_t rsp_len);

/*
 * Evidence the TSM read, shown in certificates/ and measurements/ with
 * coco/evidence_source reading "tsm <name>". The chain is SPDM's (as
 * GET_CERTIFICATE returns it); the measurement evidence is
 * { u32 transcript_len, u32 signature_len, u32 response_offset, u32 rsvd }
 * followed by the transcript and the signature. -EINVAL (logged) for malformed
 * evidence; what is shown is then unchanged.
 */
int coco_backend_certificates(struct coco_backend *b, u8 slot, u32 base_hash,
			      const void *chain, size_t len);
int coco_backend_measurements(struct coco_backend *b, u8 slot, u8 version,
			      u32 base_asym, u32 base_hash, const u8 nonce[32],
			      const void *evidence, size_t len);

/*
 * A TSM that locks TDIs gives coco.ko its TDI operations, which the
 * function's "tdisp" (bind, unbind) and coco.ko's periodic state check then
 * use while the claim lives; coco.ko checks the report against the
 * function's BARs and keeps host drivers off a locked function, as for its
 * own TDIs. Called with coco.ko's per-device locks held: they may take the
 * TSM's own locks and relay, never call back into the other functions here.
 *   bind:   LOCK_INTERFACE with @lock_flags; the interface report into
 *           @report (@len bytes at most); its length or a negative errno
 *   unbind: STOP_INTERFACE; 0 or a negative errno
 *   state:  the TDISP state (0 CONFIG_UNLOCKED .. 3 ERROR) or a negative errno
 * @ops must stay valid until the claim is released (NULL clears them).
 */
struct coco_backend_tdi_ops {
	ssize_t (*bind)(struct pci_dev *pdev, u16 lock_flags, void *report,
			size_t len);
	int (*unbind)(struct pci_dev *pdev);
	int (*state)(struct pci_dev *pdev);
};
void coco_backend_set_tdi_ops(struct coco_backend *b,
			      const struct coco_backend_tdi_ops *ops);

#endif
