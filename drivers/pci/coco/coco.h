/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between the Rust core of coco.ko (coco_main.rs) and its C part
 * (coco_sysfs.c, coco_debugfs.c, coco_tsm.c), which holds what Rust cannot
 * express as statics: sysfs attribute groups built by the DEVICE_ATTR_*
 * macros, file operations, the PCI core's operation tables.
 *
 * The Rust side declares the C functions in an extern block and defines the
 * coco_rs_* callbacks with #[no_mangle]: keep both sides in sync with this file.
 */
#ifndef _DRIVERS_PCI_COCO_H
#define _DRIVERS_PCI_COCO_H

#include <linux/types.h>

struct device;

/* Attributes of the "coco" group; the Rust side matches these values. */
enum coco_attr {
	COCO_ATTR_SPDM_VERSIONS = 0,
	COCO_ATTR_DOE_FEATURES = 1,
	COCO_ATTR_STATUS = 2,
	COCO_ATTR_AUTH_STATUS = 3,
	COCO_ATTR_SPDM_VERSION = 4,
	COCO_ATTR_ALGORITHMS = 5,
	COCO_ATTR_CERT_SLOT = 6,
	COCO_ATTR_CHALLENGE = 7,
	/* 8: was 'authenticated', now the PCI core's (coco_tsm.c) */
	COCO_ATTR_PREFERRED_SLOT = 9,
	COCO_ATTR_CMA_IDENTITY = 10,
	COCO_ATTR_CMA_IDENTITY_STATUS = 11,
	COCO_ATTR_SESSION = 12,
	COCO_ATTR_SESSION_ALGORITHMS = 13,
	COCO_ATTR_SESSION_HANDSHAKE = 14,
	COCO_ATTR_SESSION_HEARTBEAT_PERIOD = 15,
	COCO_ATTR_SESSION_MESSAGES = 16,
	COCO_ATTR_SESSION_KEY_UPDATES = 17,
	COCO_ATTR_SESSION_HEARTBEATS = 18,
	COCO_ATTR_SESSION_VERSION = 19,
	COCO_ATTR_MAILBOX_OWNER = 20,
	COCO_ATTR_IDE = 21,
	COCO_ATTR_IDE_STREAM_ID = 22,
	COCO_ATTR_IDE_STATE = 23,
	COCO_ATTR_IDE_KEY_SET = 24,
	COCO_ATTR_IDE_ALGORITHM = 25,
	COCO_ATTR_IDE_REFRESHES = 26,
	COCO_ATTR_TDISP = 27,
	COCO_ATTR_TDI_INTERFACE_INFO = 28,
	COCO_ATTR_TDI_LOCK_FLAGS = 29,
	COCO_ATTR_TDI_MMIO_RANGES = 30,
	COCO_ATTR_TDI_ERROR = 31,
	COCO_ATTR_EVIDENCE_SOURCE = 32,
};

/* Requests written to coco/session; the Rust side matches these values. */
enum coco_session_op {
	COCO_SESSION_HEARTBEAT = 0,
	COCO_SESSION_KEY_UPDATE = 1,
	COCO_SESSION_END = 2,
};

/* Attributes of the "measurements" directory. */
enum coco_meas_attr {
	COCO_MEAS_STATUS = 0,
	COCO_MEAS_STALE = 1,
	COCO_MEAS_TIMESTAMP = 2,
	COCO_MEAS_FRESH_CAPABLE = 3,
	COCO_MEAS_SPDM_VERSION = 4,
	COCO_MEAS_HASH_ALGORITHM = 5,
	COCO_MEAS_SIGNATURE_ALGORITHM = 6,
	COCO_MEAS_SLOT = 7,
	COCO_MEAS_NONCE = 8,
	COCO_MEAS_TRANSCRIPT = 9,
	COCO_MEAS_SIGNATURE = 10,
};

/* Attributes of a block directory measurements/<index>/. */
enum coco_block_attr {
	COCO_BLOCK_TYPE = 0,
	COCO_BLOCK_FORMAT = 1,
	COCO_BLOCK_VALUE = 2,
};

/* Number of SPDM certificate slots (certificates/slot0..7). */
#define COCO_SLOTS 8

/* C part, called from Rust. */
int coco_sysfs_add(struct device *dev);
void coco_sysfs_remove(struct device *dev);
void coco_sysfs_update_certificates(struct device *dev);
int coco_sysfs_init(void);
void coco_sysfs_exit(void);
int coco_sysfs_block_files(struct device *dev, unsigned int index, bool add);

/* Rust part, called from sysfs callbacks. */
ssize_t coco_rs_attr_show(struct device *dev, unsigned int attr, char *buf,
			  size_t len);
int coco_rs_rescan(struct device *dev);
ssize_t coco_rs_cert_chain_read(struct device *dev, char *buf, loff_t off,
				size_t count);
int coco_rs_authenticate(struct device *dev);
int coco_rs_set_preferred_slot(struct device *dev, int slot);
int coco_rs_session_op(struct device *dev, unsigned int op);
/* What root writes to coco/ide. */
enum coco_ide_op {
	COCO_IDE_DISCONNECT = 0,
	COCO_IDE_CONNECT = 1,
	COCO_IDE_REFRESH = 2,
};
int coco_rs_ide_op(struct device *dev, unsigned int op);
/* What root writes to tdisp. */
enum coco_tdisp_op {
	COCO_TDISP_BIND = 0,
	COCO_TDISP_START = 1,
	COCO_TDISP_UNBIND = 2,
	COCO_TDISP_ACCEPT = 3,
};
int coco_rs_tdisp_op(struct device *dev, unsigned int op);
ssize_t coco_rs_tdi_report_read(struct device *dev, char *buf, loff_t off,
				size_t count);
bool coco_rs_authenticated(struct device *dev);
bool coco_rs_slot_populated(struct device *dev, unsigned int slot);
ssize_t coco_rs_slot_read(struct device *dev, unsigned int slot, char *buf,
			  loff_t off, size_t count);
ssize_t coco_rs_meas_show(struct device *dev, unsigned int attr, char *buf,
			  size_t len);
ssize_t coco_rs_meas_read(struct device *dev, unsigned int attr, char *buf,
			  loff_t off, size_t count);
ssize_t coco_rs_block_show(struct device *dev, unsigned int index,
			   unsigned int attr, char *buf, size_t len);
int coco_rs_meas_refresh(struct device *dev);
int coco_rs_meas_set_nonce(struct device *dev, const u8 *nonce);

/* coco_tsm.c */
void coco_tsm_init(void);
void coco_tsm_exit(void);
int coco_block_drivers(struct device *dev, bool block);
void coco_ide_panic(struct device *dev);
/* What coco_tdi_gate() does (see coco_tsm.c). */
enum coco_tdi_gate {
	COCO_TDI_GATE_HOLD = 0,
	COCO_TDI_GATE_HOLD_BOUND = 1,
	COCO_TDI_GATE_LIFT = 2,
	COCO_TDI_GATE_LIFT_ATTACH = 3,
	/* confidential guest: back to "not accepted" (pci=tee_accept) */
	COCO_TDI_GATE_UNACCEPTED = 4,
	/* confidential guest: accepted, and the driver core attaches a driver */
	COCO_TDI_GATE_ACCEPT = 5,
};
int coco_tdi_gate(struct device *dev, unsigned int op);
bool coco_tee_accept_required(void);

/* coco_guest_chan.c: the emulated guest-to-TSM channel; guest/channel.rs matches it. */
struct coco_guest_call {
	u32 exit_code;		/* 0x80000020 TIO_GUEST_REQUEST, 0x80000021 TIO_OP */
	u32 sbdf;		/* segment << 16 | requester ID */
	u64 param;		/* in: info flags or action; out: state or tdi_id */
	const void *req;	/* the guest message (header and payload) */
	size_t req_len;
	void *rsp;		/* the response message */
	size_t rsp_len;
	void *data;		/* data_npages pages: in data_in_len bytes, out the pages */
	size_t data_in_len;
	u32 data_npages;
	u32 data_npages_out;	/* pages needed when result is 1 */
	u32 result;		/* 0 done, 1 data too small, 2 fw error, 3 malformed */
	u64 fw_err;
};
bool coco_guest_chan_present(void);
int coco_guest_chan_call(struct coco_guest_call *call);
int coco_guest_chan_register(void);
void coco_guest_chan_unregister(void);

/* coco_debugfs.c */
struct dentry;
void coco_debugfs_init(void);
void coco_debugfs_exit(void);
struct dentry *coco_debugfs_add(struct device *dev);
void coco_debugfs_remove(struct dentry *dir);

/* Rust callbacks of the debugfs test hooks */
int coco_rs_debug_claim(struct device *dev, bool claim);
int coco_rs_debug_relay(struct device *dev, unsigned int type, const u8 *req,
			size_t len);
ssize_t coco_rs_debug_relay_last(struct device *dev, u8 *buf, size_t len);
int coco_rs_debug_session_hold(struct device *dev, bool hold);
int coco_rs_debug_session_held(struct device *dev);

#endif /* _DRIVERS_PCI_COCO_H */
