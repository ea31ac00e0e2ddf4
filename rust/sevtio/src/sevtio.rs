//! AMD SEV-TIO firmware (PSP) command interface: command IDs and status codes, the SEV mailbox
//! register encoding, scatter list addresses (SLAs), the SPDM buffer header and data objects,
//! scatter lists, the TIO_STATUS and TDI status pages, and the TIO command buffers.
//!
//! With SEV-TIO the PSP, not the host, is the SPDM requester: it authenticates the device, sets
//! up the SPDM session and programs the IDE keys of both ends. The host relays: a command that
//! needs to talk to the device returns `SPDM_REQUEST` (0x32) with an SPDM (or secured SPDM)
//! message in the `req` buffer of its `spdm_ctrl`; the host sends it through the function's DOE
//! mailbox, writes the device's answer into the `resp` buffer and issues the same command
//! buffer again, until the PSP returns SUCCESS or an error. `EXPAND_BUFFER_LENGTH_REQUEST`
//! (0x31) asks the host to grow the `output` or `scratch` buffer to the `capacity_sz` the PSP
//! wrote into its header, and retry.
//!
//! Sources (facts only, no code): Linux `drivers/crypto/ccp/sev-dev-tio.{c,h}` (merged phase 1,
//! torvalds/linux@ec496f77, and @8934827d for DEV_MEASUREMENTS and DEV_CERTIFICATES),
//! `include/uapi/linux/psp-sev.h` (status codes), `drivers/crypto/ccp/sev-dev.{c,h}` and
//! `include/linux/psp.h` (mailbox); AMD's posted phase-2 series (AMDESE/linux-kvm@16f379f5,
//! `sev-dev-tio.c`) for the commands not in mainline. AMD document 58271 ("SEV-TIO Firmware
//! Interface") is normative; where it and this file disagree, it wins.
//!
//! # Mailbox
//!
//! The host writes the command buffer's physical address to `cmdbuff_addr_lo/hi`, then
//! `cmdresp = (command << 16) (bits 26:16) | IOC (bit 0)`. The PSP sets bit 31 (RESP) when done;
//! bits 15:0 then hold the status and bit 30 signals that the PSP needs recovery.
//!
//! # SLA (u64)
//!
//! ```text
//! bit 0 page_type (0 data, 1 scatter) | bit 1 page_size (0 4 KiB, 1 2 MiB) | 11:2 reserved
//! 51:12 pfn (40 bits) | 63:52 reserved
//! ```
//!
//! NULL is 0; the end-of-list marker (EOL) is a data 4 KiB SLA with pfn 2^40 - 1. A scatter SLA
//! points to a page of SLAs (4 KiB data pages), ended by EOL.
//!
//! # SPDM buffers (`spdm_ctrl.req`, `.resp`, `.scratch`, `.output`)
//!
//! ```text
//! 0x00 u32 capacity_sz | u32 payload_sz (multiple of 32) | u32 flags (bit 0 encrypted) | rsvd[4]
//! 0x10 iv[16] | 0x20 authtag[16] | 0x30 rsvd[16]
//! 0x40 payload: a data object
//!      u32 id (1 REQ, 2 RESP) | u32 length (including this 16-byte header) | u8 minor | u8 major
//!      u8 data_type (1 SPDM, 2 secured SPDM) | rsvd[5] | the message
//! ```
//!
//! `capacity_sz` is the size of the whole buffer, header included (Linux sets it to the pages
//! it allocated, and grows the buffer to the firmware's `capacity_sz` on
//! EXPAND_BUFFER_LENGTH_REQUEST); `payload_sz` counts the bytes after the 0x40-byte header.
//! So `payload_sz <= capacity_sz - 0x40`. The host writes a RESP object's `length` rounded up
//! to 32 bytes (and `payload_sz` equal to it): the message in a RESP object is followed by up
//! to 31 bytes of padding, and its own length must come from the message itself.
//!
//! # Command buffers
//!
//! All little-endian; every buffer starts with `u32 length` (the buffer's size) and is exactly
//! that long. `SLA` is 8 bytes; `spdm_ctrl` is `SLA req, resp, scratch, output` (32 bytes).
//! `iid` is a TDISP INTERFACE_ID: `u32 function_id` (15:0 RID, 23:16 segment, 24 segment
//! valid) then 8 reserved bytes.
//!
//! ```text
//! TIO_STATUS        0xD0 16  len | rsvd[4] | u64 status_paddr
//! TIO_INIT          0xD1 16  len | rsvd[12]
//! TIO_DEV_CREATE    0xD2 32  len | rsvd[4] | SLA dev_ctx | u16 device_id | u16 root_port_id
//!                            | u8 segment | rsvd[11]
//! TIO_DEV_RECLAIM   0xD3 16  len | rsvd[4] | SLA dev_ctx
//! TIO_DEV_CONNECT   0xD4 80  len | rsvd[4] | spdm_ctrl | rsvd[8] | SLA dev_ctx | u8 tc_mask
//!                            | u8 cert_slot | rsvd[6] | u8 ide_stream_id[8] | rsvd[8]
//! TIO_DEV_DISCONNECT 0xD5 48 len | u32 flags (bit 0 FORCE) | spdm_ctrl | SLA dev_ctx
//! TIO_DEV_STATUS    0xD6 32  len | rsvd[4] | SLA dev_ctx | u64 status_paddr | rsvd[8]
//! TIO_DEV_MEASUREMENTS 0xD7 80 len | u32 flags (bit 0 RAW_BITSTREAM) | spdm_ctrl
//!                            | SLA dev_ctx | u8 nonce[32]
//! TIO_DEV_CERTIFICATES 0xD8 48 len | rsvd[4] | spdm_ctrl | SLA dev_ctx
//! TIO_TDI_CREATE    0xDA 48  len | rsvd[4] | SLA dev_ctx | SLA tdi_ctx | iid (12) | rsvd[12]
//! TIO_TDI_RECLAIM   0xDB 32  len | rsvd[4] | SLA dev_ctx | SLA tdi_ctx | rsvd[8]
//! TIO_TDI_BIND      0xDC 80  len | rsvd[4] | spdm_ctrl | SLA dev_ctx | SLA tdi_ctx
//!                            | u64 gctx_paddr | u16 guest_device_id
//!                            | u16 tdisp_lock_if_flags | u16 run_flags (bit 0 FORCE) | rsvd[10]
//! TIO_TDI_UNBIND    0xDD 64  len | u32 flags (bit 0 FORCE) | spdm_ctrl | SLA dev_ctx
//!                            | SLA tdi_ctx | u64 gctx_paddr
//! TIO_TDI_REPORT    0xDE 64  len | rsvd[4] | spdm_ctrl | SLA dev_ctx | SLA tdi_ctx
//!                            | u64 gctx_paddr
//! TIO_TDI_STATUS    0xDF 64  len | rsvd[4] | spdm_ctrl | SLA dev_ctx | SLA tdi_ctx
//!                            | u64 status_paddr
//! TIO_TDI_INFO      0xE3 48  len | rsvd[4] | SLA dev_ctx | SLA tdi_ctx | u64 status_paddr
//!                            | rsvd[16]
//! ```
//!
//! TIO_STATUS to TIO_DEV_DISCONNECT are mainline Linux's (ec496f77), DEV_MEASUREMENTS and
//! DEV_CERTIFICATES are defined in mainline too (8934827d). The others (DEV_STATUS, TDI_*) are
//! not in mainline: this project's layout, following the posted series' conventions and
//! byte layouts (AMDESE/linux-kvm@16f379f5); AMD doc 58271 is normative. The earlier RFC
//! (2024-08) had different TDI_BIND and TDI_INFO layouts.
//!
//! Parsing is strict: the length field must equal the command's size and the buffer's, every
//! reserved byte and bit must be zero, SLAs must have no reserved bit set, no SLA may be the EOL
//! marker and the device and TDI context SLAs may not be NULL. What parses re-encodes to the
//! same bytes.
//!
//! This file is compiled both as the body of the `coco-sevtio` crate and directly into the
//! kernel module. It uses only `core`, has no `unsafe`, never allocates and has no code path
//! that can panic.

// --- Command IDs -------------------------------------------------------------------------

/// TIO_STATUS: SEV-TIO capabilities and state into a status page.
pub const SEV_CMD_TIO_STATUS: u16 = 0x0D0;
/// TIO_INIT: initialise SEV-TIO.
pub const SEV_CMD_TIO_INIT: u16 = 0x0D1;
/// TIO_DEV_CREATE: create a device context for a physical function.
pub const SEV_CMD_TIO_DEV_CREATE: u16 = 0x0D2;
/// TIO_DEV_RECLAIM: release a device context.
pub const SEV_CMD_TIO_DEV_RECLAIM: u16 = 0x0D3;
/// TIO_DEV_CONNECT: authenticate the device, open the SPDM session, set up IDE.
pub const SEV_CMD_TIO_DEV_CONNECT: u16 = 0x0D4;
/// TIO_DEV_DISCONNECT: tear the session and IDE down.
pub const SEV_CMD_TIO_DEV_DISCONNECT: u16 = 0x0D5;
/// TIO_DEV_STATUS: a device context's state into a status page.
pub const SEV_CMD_TIO_DEV_STATUS: u16 = 0x0D6;
/// TIO_DEV_MEASUREMENTS: the device's measurements into the output buffer.
pub const SEV_CMD_TIO_DEV_MEASUREMENTS: u16 = 0x0D7;
/// TIO_DEV_CERTIFICATES: the device's certificate chain into the output buffer.
pub const SEV_CMD_TIO_DEV_CERTIFICATES: u16 = 0x0D8;
/// TIO_TDI_CREATE: create a TDI context.
pub const SEV_CMD_TIO_TDI_CREATE: u16 = 0x0DA;
/// TIO_TDI_RECLAIM: release a TDI context.
pub const SEV_CMD_TIO_TDI_RECLAIM: u16 = 0x0DB;
/// TIO_TDI_BIND: bind a TDI to a guest (TDISP LOCK_INTERFACE).
pub const SEV_CMD_TIO_TDI_BIND: u16 = 0x0DC;
/// TIO_TDI_UNBIND: unbind a TDI (TDISP STOP_INTERFACE).
pub const SEV_CMD_TIO_TDI_UNBIND: u16 = 0x0DD;
/// TIO_TDI_REPORT: the TDI's interface report into the output buffer.
pub const SEV_CMD_TIO_TDI_REPORT: u16 = 0x0DE;
/// TIO_TDI_STATUS: the TDI's TDISP state into a status page.
pub const SEV_CMD_TIO_TDI_STATUS: u16 = 0x0DF;
/// TIO_GUEST_REQUEST (named only; no codec here).
pub const SEV_CMD_TIO_GUEST_REQUEST: u16 = 0x0E0;
/// TIO_ASID_FENCE_CLEAR (named only; no codec here).
pub const SEV_CMD_TIO_ASID_FENCE_CLEAR: u16 = 0x0E1;
/// TIO_ASID_FENCE_STATUS (named only; no codec here).
pub const SEV_CMD_TIO_ASID_FENCE_STATUS: u16 = 0x0E2;
/// TIO_TDI_INFO: a TDI's bind information into a status page.
pub const SEV_CMD_TIO_TDI_INFO: u16 = 0x0E3;
/// TIO_ROLL_KEY (named only; no codec here).
pub const SEV_CMD_TIO_ROLL_KEY: u16 = 0x0E4;

/// The commands this codec parses and encodes, in ID order.
pub const TIO_COMMANDS: [u16; 16] = [
    SEV_CMD_TIO_STATUS,
    SEV_CMD_TIO_INIT,
    SEV_CMD_TIO_DEV_CREATE,
    SEV_CMD_TIO_DEV_RECLAIM,
    SEV_CMD_TIO_DEV_CONNECT,
    SEV_CMD_TIO_DEV_DISCONNECT,
    SEV_CMD_TIO_DEV_STATUS,
    SEV_CMD_TIO_DEV_MEASUREMENTS,
    SEV_CMD_TIO_DEV_CERTIFICATES,
    SEV_CMD_TIO_TDI_CREATE,
    SEV_CMD_TIO_TDI_RECLAIM,
    SEV_CMD_TIO_TDI_BIND,
    SEV_CMD_TIO_TDI_UNBIND,
    SEV_CMD_TIO_TDI_REPORT,
    SEV_CMD_TIO_TDI_STATUS,
    SEV_CMD_TIO_TDI_INFO,
];

/// Largest TIO command buffer (Linux keeps a copy of this size to re-issue a command).
pub const SEV_TIO_MAX_COMMAND_LENGTH: usize = 128;

/// A name for a SEV-TIO command ID, for logs.
pub fn command_name(cmd: u16) -> &'static str {
    match cmd {
        SEV_CMD_TIO_STATUS => "TIO_STATUS",
        SEV_CMD_TIO_INIT => "TIO_INIT",
        SEV_CMD_TIO_DEV_CREATE => "TIO_DEV_CREATE",
        SEV_CMD_TIO_DEV_RECLAIM => "TIO_DEV_RECLAIM",
        SEV_CMD_TIO_DEV_CONNECT => "TIO_DEV_CONNECT",
        SEV_CMD_TIO_DEV_DISCONNECT => "TIO_DEV_DISCONNECT",
        SEV_CMD_TIO_DEV_STATUS => "TIO_DEV_STATUS",
        SEV_CMD_TIO_DEV_MEASUREMENTS => "TIO_DEV_MEASUREMENTS",
        SEV_CMD_TIO_DEV_CERTIFICATES => "TIO_DEV_CERTIFICATES",
        SEV_CMD_TIO_TDI_CREATE => "TIO_TDI_CREATE",
        SEV_CMD_TIO_TDI_RECLAIM => "TIO_TDI_RECLAIM",
        SEV_CMD_TIO_TDI_BIND => "TIO_TDI_BIND",
        SEV_CMD_TIO_TDI_UNBIND => "TIO_TDI_UNBIND",
        SEV_CMD_TIO_TDI_REPORT => "TIO_TDI_REPORT",
        SEV_CMD_TIO_TDI_STATUS => "TIO_TDI_STATUS",
        SEV_CMD_TIO_GUEST_REQUEST => "TIO_GUEST_REQUEST",
        SEV_CMD_TIO_ASID_FENCE_CLEAR => "TIO_ASID_FENCE_CLEAR",
        SEV_CMD_TIO_ASID_FENCE_STATUS => "TIO_ASID_FENCE_STATUS",
        SEV_CMD_TIO_TDI_INFO => "TIO_TDI_INFO",
        SEV_CMD_TIO_ROLL_KEY => "TIO_ROLL_KEY",
        _ => "unknown SEV command",
    }
}

// --- Status codes ------------------------------------------------------------------------

/// SUCCESS.
pub const SEV_RET_SUCCESS: u16 = 0x0000;
/// INVALID_PLATFORM_STATE.
pub const SEV_RET_INVALID_PLATFORM_STATE: u16 = 0x0001;
/// INVALID_GUEST_STATE.
pub const SEV_RET_INVALID_GUEST_STATE: u16 = 0x0002;
/// INVALID_CONFIG.
pub const SEV_RET_INVALID_CONFIG: u16 = 0x0003;
/// INVALID_LEN (a buffer is too small).
pub const SEV_RET_INVALID_LEN: u16 = 0x0004;
/// ALREADY_OWNED.
pub const SEV_RET_ALREADY_OWNED: u16 = 0x0005;
/// INVALID_CERTIFICATE.
pub const SEV_RET_INVALID_CERTIFICATE: u16 = 0x0006;
/// POLICY_FAILURE.
pub const SEV_RET_POLICY_FAILURE: u16 = 0x0007;
/// INACTIVE.
pub const SEV_RET_INACTIVE: u16 = 0x0008;
/// INVALID_ADDRESS.
pub const SEV_RET_INVALID_ADDRESS: u16 = 0x0009;
/// BAD_SIGNATURE.
pub const SEV_RET_BAD_SIGNATURE: u16 = 0x000A;
/// BAD_MEASUREMENT.
pub const SEV_RET_BAD_MEASUREMENT: u16 = 0x000B;
/// ASID_OWNED.
pub const SEV_RET_ASID_OWNED: u16 = 0x000C;
/// INVALID_ASID.
pub const SEV_RET_INVALID_ASID: u16 = 0x000D;
/// WBINVD_REQUIRED.
pub const SEV_RET_WBINVD_REQUIRED: u16 = 0x000E;
/// DFFLUSH_REQUIRED.
pub const SEV_RET_DFFLUSH_REQUIRED: u16 = 0x000F;
/// INVALID_GUEST.
pub const SEV_RET_INVALID_GUEST: u16 = 0x0010;
/// INVALID_COMMAND.
pub const SEV_RET_INVALID_COMMAND: u16 = 0x0011;
/// ACTIVE.
pub const SEV_RET_ACTIVE: u16 = 0x0012;
/// HWSEV_RET_PLATFORM (hardware error).
pub const SEV_RET_HWSEV_RET_PLATFORM: u16 = 0x0013;
/// HWSEV_RET_UNSAFE (hardware unsafe).
pub const SEV_RET_HWSEV_RET_UNSAFE: u16 = 0x0014;
/// UNSUPPORTED.
pub const SEV_RET_UNSUPPORTED: u16 = 0x0015;
/// INVALID_PARAM.
pub const SEV_RET_INVALID_PARAM: u16 = 0x0016;
/// RESOURCE_LIMIT.
pub const SEV_RET_RESOURCE_LIMIT: u16 = 0x0017;
/// SECURE_DATA_INVALID.
pub const SEV_RET_SECURE_DATA_INVALID: u16 = 0x0018;
/// INVALID_PAGE_SIZE.
pub const SEV_RET_INVALID_PAGE_SIZE: u16 = 0x0019;
/// INVALID_PAGE_STATE.
pub const SEV_RET_INVALID_PAGE_STATE: u16 = 0x001A;
/// INVALID_MDATA_ENTRY.
pub const SEV_RET_INVALID_MDATA_ENTRY: u16 = 0x001B;
/// INVALID_PAGE_OWNER.
pub const SEV_RET_INVALID_PAGE_OWNER: u16 = 0x001C;
/// AEAD_OFLOW.
pub const SEV_RET_AEAD_OFLOW: u16 = 0x001D;
/// EXIT_RING_BUFFER.
pub const SEV_RET_EXIT_RING_BUFFER: u16 = 0x001F;
/// RMP_INIT_REQUIRED.
pub const SEV_RET_RMP_INIT_REQUIRED: u16 = 0x0020;
/// BAD_SVN.
pub const SEV_RET_BAD_SVN: u16 = 0x0021;
/// BAD_VERSION.
pub const SEV_RET_BAD_VERSION: u16 = 0x0022;
/// SHUTDOWN_REQUIRED.
pub const SEV_RET_SHUTDOWN_REQUIRED: u16 = 0x0023;
/// UPDATE_FAILED.
pub const SEV_RET_UPDATE_FAILED: u16 = 0x0024;
/// RESTORE_REQUIRED.
pub const SEV_RET_RESTORE_REQUIRED: u16 = 0x0025;
/// RMP_INITIALIZATION_FAILED.
pub const SEV_RET_RMP_INITIALIZATION_FAILED: u16 = 0x0026;
/// INVALID_KEY.
pub const SEV_RET_INVALID_KEY: u16 = 0x0027;
/// SHUTDOWN_INCOMPLETE.
pub const SEV_RET_SHUTDOWN_INCOMPLETE: u16 = 0x0028;
/// INCORRECT_BUFFER_LENGTH.
pub const SEV_RET_INCORRECT_BUFFER_LENGTH: u16 = 0x0030;
/// EXPAND_BUFFER_LENGTH_REQUEST: grow the output or scratch buffer to its header's
/// `capacity_sz` and issue the command again.
pub const SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST: u16 = 0x0031;
/// SPDM_REQUEST: relay the SPDM message in the `req` buffer and issue the command again.
pub const SEV_RET_SPDM_REQUEST: u16 = 0x0032;
/// SPDM_ERROR.
pub const SEV_RET_SPDM_ERROR: u16 = 0x0033;
/// ERR_IN_DEV_CONN (error in the device connection).
pub const SEV_RET_ERR_IN_DEV_CONN: u16 = 0x0035;
/// INVALID_DEV_CTX.
pub const SEV_RET_INVALID_DEV_CTX: u16 = 0x0036;
/// INVALID_TDI_CTX.
pub const SEV_RET_INVALID_TDI_CTX: u16 = 0x0037;
/// INVALID_TDI.
pub const SEV_RET_INVALID_TDI: u16 = 0x0038;
/// RECLAIM_REQUIRED.
pub const SEV_RET_RECLAIM_REQUIRED: u16 = 0x0039;
/// IN_USE.
pub const SEV_RET_IN_USE: u16 = 0x003A;
/// INVALID_DEV_STATE.
pub const SEV_RET_INVALID_DEV_STATE: u16 = 0x003B;
/// INVALID_TDI_STATE.
pub const SEV_RET_INVALID_TDI_STATE: u16 = 0x003C;
/// DEV_CERT_CHANGED.
pub const SEV_RET_DEV_CERT_CHANGED: u16 = 0x003D;
/// RESYNC_REQ.
pub const SEV_RET_RESYNC_REQ: u16 = 0x003E;
/// RESPONSE_TOO_LARGE.
pub const SEV_RET_RESPONSE_TOO_LARGE: u16 = 0x003F;

/// Every SEV firmware status code with its name (Linux's `SEV_RET_*` without the prefix, and
/// without the `SEV_STATUS_` infix of the TIO ones; Linux's `NO_FW_CALL`, -1, is not a
/// firmware code).
pub const SEV_STATUS_CODES: [(u16, &str); 55] = [
    (SEV_RET_SUCCESS, "SUCCESS"),
    (SEV_RET_INVALID_PLATFORM_STATE, "INVALID_PLATFORM_STATE"),
    (SEV_RET_INVALID_GUEST_STATE, "INVALID_GUEST_STATE"),
    (SEV_RET_INVALID_CONFIG, "INVALID_CONFIG"),
    (SEV_RET_INVALID_LEN, "INVALID_LEN"),
    (SEV_RET_ALREADY_OWNED, "ALREADY_OWNED"),
    (SEV_RET_INVALID_CERTIFICATE, "INVALID_CERTIFICATE"),
    (SEV_RET_POLICY_FAILURE, "POLICY_FAILURE"),
    (SEV_RET_INACTIVE, "INACTIVE"),
    (SEV_RET_INVALID_ADDRESS, "INVALID_ADDRESS"),
    (SEV_RET_BAD_SIGNATURE, "BAD_SIGNATURE"),
    (SEV_RET_BAD_MEASUREMENT, "BAD_MEASUREMENT"),
    (SEV_RET_ASID_OWNED, "ASID_OWNED"),
    (SEV_RET_INVALID_ASID, "INVALID_ASID"),
    (SEV_RET_WBINVD_REQUIRED, "WBINVD_REQUIRED"),
    (SEV_RET_DFFLUSH_REQUIRED, "DFFLUSH_REQUIRED"),
    (SEV_RET_INVALID_GUEST, "INVALID_GUEST"),
    (SEV_RET_INVALID_COMMAND, "INVALID_COMMAND"),
    (SEV_RET_ACTIVE, "ACTIVE"),
    (SEV_RET_HWSEV_RET_PLATFORM, "HWSEV_RET_PLATFORM"),
    (SEV_RET_HWSEV_RET_UNSAFE, "HWSEV_RET_UNSAFE"),
    (SEV_RET_UNSUPPORTED, "UNSUPPORTED"),
    (SEV_RET_INVALID_PARAM, "INVALID_PARAM"),
    (SEV_RET_RESOURCE_LIMIT, "RESOURCE_LIMIT"),
    (SEV_RET_SECURE_DATA_INVALID, "SECURE_DATA_INVALID"),
    (SEV_RET_INVALID_PAGE_SIZE, "INVALID_PAGE_SIZE"),
    (SEV_RET_INVALID_PAGE_STATE, "INVALID_PAGE_STATE"),
    (SEV_RET_INVALID_MDATA_ENTRY, "INVALID_MDATA_ENTRY"),
    (SEV_RET_INVALID_PAGE_OWNER, "INVALID_PAGE_OWNER"),
    (SEV_RET_AEAD_OFLOW, "AEAD_OFLOW"),
    (SEV_RET_EXIT_RING_BUFFER, "EXIT_RING_BUFFER"),
    (SEV_RET_RMP_INIT_REQUIRED, "RMP_INIT_REQUIRED"),
    (SEV_RET_BAD_SVN, "BAD_SVN"),
    (SEV_RET_BAD_VERSION, "BAD_VERSION"),
    (SEV_RET_SHUTDOWN_REQUIRED, "SHUTDOWN_REQUIRED"),
    (SEV_RET_UPDATE_FAILED, "UPDATE_FAILED"),
    (SEV_RET_RESTORE_REQUIRED, "RESTORE_REQUIRED"),
    (
        SEV_RET_RMP_INITIALIZATION_FAILED,
        "RMP_INITIALIZATION_FAILED",
    ),
    (SEV_RET_INVALID_KEY, "INVALID_KEY"),
    (SEV_RET_SHUTDOWN_INCOMPLETE, "SHUTDOWN_INCOMPLETE"),
    (SEV_RET_INCORRECT_BUFFER_LENGTH, "INCORRECT_BUFFER_LENGTH"),
    (
        SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST,
        "EXPAND_BUFFER_LENGTH_REQUEST",
    ),
    (SEV_RET_SPDM_REQUEST, "SPDM_REQUEST"),
    (SEV_RET_SPDM_ERROR, "SPDM_ERROR"),
    (SEV_RET_ERR_IN_DEV_CONN, "ERR_IN_DEV_CONN"),
    (SEV_RET_INVALID_DEV_CTX, "INVALID_DEV_CTX"),
    (SEV_RET_INVALID_TDI_CTX, "INVALID_TDI_CTX"),
    (SEV_RET_INVALID_TDI, "INVALID_TDI"),
    (SEV_RET_RECLAIM_REQUIRED, "RECLAIM_REQUIRED"),
    (SEV_RET_IN_USE, "IN_USE"),
    (SEV_RET_INVALID_DEV_STATE, "INVALID_DEV_STATE"),
    (SEV_RET_INVALID_TDI_STATE, "INVALID_TDI_STATE"),
    (SEV_RET_DEV_CERT_CHANGED, "DEV_CERT_CHANGED"),
    (SEV_RET_RESYNC_REQ, "RESYNC_REQ"),
    (SEV_RET_RESPONSE_TOO_LARGE, "RESPONSE_TOO_LARGE"),
];

/// The name of a SEV firmware status code, for logs.
pub fn status_name(code: u16) -> &'static str {
    SEV_STATUS_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown SEV status", |(_, n)| n)
}

// --- Mailbox -----------------------------------------------------------------------------

/// cmdresp: the command field, bits 26:16.
pub const SEV_CMDRESP_CMD_MASK: u32 = 0x07FF_0000;
/// cmdresp: shift of the command field.
pub const SEV_CMDRESP_CMD_SHIFT: u32 = 16;
/// cmdresp: interrupt on completion (written by the host with the command).
pub const SEV_CMDRESP_IOC: u32 = 0x0000_0001;
/// cmdresp: the status, bits 15:0 (valid once RESP is set).
pub const PSP_CMDRESP_STS_MASK: u32 = 0x0000_FFFF;
/// cmdresp: the PSP needs recovery.
pub const PSP_CMDRESP_RECOVERY: u32 = 0x4000_0000;
/// cmdresp: the PSP has completed the command.
pub const PSP_CMDRESP_RESP: u32 = 0x8000_0000;
/// Largest command ID the command field holds.
pub const SEV_CMD_MAX: u16 = 0x07FF;

/// Register offsets of the SEV mailbox in the PSP's MMIO BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailboxRegs {
    /// The command/response register.
    pub cmdresp: u32,
    /// Low 32 bits of the command buffer's physical address.
    pub cmdbuff_addr_lo: u32,
    /// High 32 bits of the command buffer's physical address.
    pub cmdbuff_addr_hi: u32,
}

/// SEV mailbox of the "sevv1" PSPs (C2PMSG_32, C2PMSG_56, C2PMSG_57).
pub const SEV_MAILBOX_V1: MailboxRegs = MailboxRegs {
    cmdresp: 0x10580,
    cmdbuff_addr_lo: 0x105E0,
    cmdbuff_addr_hi: 0x105E4,
};

/// SEV mailbox of the "sevv2" PSPs.
pub const SEV_MAILBOX_V2: MailboxRegs = MailboxRegs {
    cmdresp: 0x10980,
    cmdbuff_addr_lo: 0x109E0,
    cmdbuff_addr_hi: 0x109E4,
};

/// The cmdresp value the host writes to issue `cmd` (`None` if it does not fit 11 bits).
pub fn cmdresp_request(cmd: u16, ioc: bool) -> Option<u32> {
    if cmd > SEV_CMD_MAX {
        return None;
    }
    let field = u32::from(cmd).checked_shl(SEV_CMDRESP_CMD_SHIFT)?;
    Some(field | if ioc { SEV_CMDRESP_IOC } else { 0 })
}

/// A command written to cmdresp, as the PSP reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CmdRespRequest {
    /// The command ID.
    pub command: u16,
    /// Whether the host wants an interrupt on completion.
    pub ioc: bool,
}

/// Decodes a cmdresp value written by the host: the command and IOC, every other bit zero
/// (in particular RESP, which the PSP sets, and the status bits).
pub fn parse_cmdresp_request(reg: u32) -> Result<CmdRespRequest, SevTioError> {
    if reg & !(SEV_CMDRESP_CMD_MASK | SEV_CMDRESP_IOC) != 0 {
        return Err(SevTioError::Reserved);
    }
    let command = u16::try_from((reg & SEV_CMDRESP_CMD_MASK) >> SEV_CMDRESP_CMD_SHIFT)
        .map_err(|_| SevTioError::Reserved)?;
    Ok(CmdRespRequest {
        command,
        ioc: reg & SEV_CMDRESP_IOC != 0,
    })
}

/// The cmdresp value the PSP writes when it completes the command in `request` with `status`:
/// RESP set, the status in bits 15:0, the command field kept (Linux reads only RESP, RECOVERY
/// and the status; keeping the command is this project's choice).
pub fn cmdresp_response(request: u32, status: u16, recovery: bool) -> u32 {
    (request & SEV_CMDRESP_CMD_MASK)
        | PSP_CMDRESP_RESP
        | if recovery { PSP_CMDRESP_RECOVERY } else { 0 }
        | u32::from(status)
}

/// A completed command, as the host reads cmdresp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CmdRespStatus {
    /// The firmware status (`SEV_RET_*`).
    pub status: u16,
    /// The PSP needs recovery.
    pub recovery: bool,
}

/// Reads cmdresp as the host polls it: `None` while RESP is clear (the command is running).
pub fn parse_cmdresp_response(reg: u32) -> Option<CmdRespStatus> {
    if reg & PSP_CMDRESP_RESP == 0 {
        return None;
    }
    Some(CmdRespStatus {
        status: u16::try_from(reg & PSP_CMDRESP_STS_MASK).unwrap_or(u16::MAX),
        recovery: reg & PSP_CMDRESP_RECOVERY != 0,
    })
}

/// The command buffer's physical address as (cmdbuff_addr_lo, cmdbuff_addr_hi).
pub fn cmdbuff_addr_split(pa: u64) -> (u32, u32) {
    let [b0, b1, b2, b3, b4, b5, b6, b7] = pa.to_le_bytes();
    (
        u32::from_le_bytes([b0, b1, b2, b3]),
        u32::from_le_bytes([b4, b5, b6, b7]),
    )
}

/// The command buffer's physical address from cmdbuff_addr_lo and cmdbuff_addr_hi.
pub fn cmdbuff_addr_join(lo: u32, hi: u32) -> u64 {
    let [l0, l1, l2, l3] = lo.to_le_bytes();
    let [h0, h1, h2, h3] = hi.to_le_bytes();
    u64::from_le_bytes([l0, l1, l2, l3, h0, h1, h2, h3])
}

// --- Errors ------------------------------------------------------------------------------

/// Reasons a SEV-TIO structure cannot be parsed or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SevTioError {
    /// The input ends before the structure does.
    TooShort,
    /// Bytes follow the structure.
    TrailingBytes,
    /// A length field disagrees with the structure or the buffer.
    InvalidLength,
    /// The command ID is not one this codec knows.
    UnknownCommand,
    /// A reserved field or bit is not zero.
    Reserved,
    /// An SLA has reserved bits set, or a page frame number does not fit 40 bits.
    InvalidSla,
    /// The end-of-list SLA where a buffer address is required.
    EolSla,
    /// A device or TDI context SLA is NULL.
    NullContext,
    /// A field holds a value that is not allowed (TC mask without TC 0, certificate slot
    /// above 7, TDI state above 3, a function ID with reserved bits).
    InvalidField,
    /// A data object ID other than REQ (1) and RESP (2).
    UnknownObjectId,
    /// A data object type other than SPDM (1) and secured SPDM (2).
    UnknownDataType,
    /// payload_sz is not a multiple of 32.
    Misaligned,
    /// The payload does not fit the buffer's capacity.
    CapacityExceeded,
    /// A scatter list is empty, not ended by EOL within its page, or holds an entry that is
    /// not a 4 KiB data page.
    InvalidScatterList,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl SevTioError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SevTioError::TooShort => "SEV-TIO structure truncated",
            SevTioError::TrailingBytes => "unexpected bytes after the SEV-TIO structure",
            SevTioError::InvalidLength => "SEV-TIO length field inconsistent with the buffer",
            SevTioError::UnknownCommand => "unknown SEV-TIO command",
            SevTioError::Reserved => "reserved SEV-TIO field or bit not zero",
            SevTioError::InvalidSla => "SLA with reserved bits set or a PFN beyond 40 bits",
            SevTioError::EolSla => "end-of-list SLA where a buffer address is required",
            SevTioError::NullContext => "NULL device or TDI context SLA",
            SevTioError::InvalidField => "invalid value in a SEV-TIO field",
            SevTioError::UnknownObjectId => "unknown SPDM data object ID",
            SevTioError::UnknownDataType => "unknown SPDM data object type",
            SevTioError::Misaligned => "SPDM buffer payload size not a multiple of 32",
            SevTioError::CapacityExceeded => "SPDM buffer payload exceeds its capacity",
            SevTioError::InvalidScatterList => "invalid SLA scatter list",
            SevTioError::BufferTooSmall => "output buffer too small for the SEV-TIO structure",
        }
    }
}

impl core::fmt::Display for SevTioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

// --- Reader and writer -------------------------------------------------------------------

/// Little-endian reader over a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], SevTioError> {
        let b = self.buf.get(..n).ok_or(SevTioError::TooShort)?;
        self.buf = self.buf.get(n..).unwrap_or(&[]);
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SevTioError> {
        self.bytes(N)?.try_into().map_err(|_| SevTioError::TooShort)
    }

    /// `n` reserved bytes, which must be zero.
    fn zeros(&mut self, n: usize) -> Result<(), SevTioError> {
        if self.bytes(n)?.iter().any(|&b| b != 0) {
            return Err(SevTioError::Reserved);
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, SevTioError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, SevTioError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, SevTioError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SevTioError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn sla(&mut self) -> Result<Sla, SevTioError> {
        Sla::from_u64(self.u64()?)
    }

    fn finish(&self) -> Result<(), SevTioError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SevTioError::TrailingBytes)
        }
    }
}

/// Writer into an output buffer; every write is bounds-checked.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), SevTioError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(SevTioError::BufferTooSmall)?;
        self.out
            .get_mut(self.pos..end)
            .ok_or(SevTioError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn zeros(&mut self, n: usize) -> Result<(), SevTioError> {
        let end = self.pos.checked_add(n).ok_or(SevTioError::BufferTooSmall)?;
        self.out
            .get_mut(self.pos..end)
            .ok_or(SevTioError::BufferTooSmall)?
            .fill(0);
        self.pos = end;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), SevTioError> {
        self.put(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), SevTioError> {
        self.put(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), SevTioError> {
        self.put(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), SevTioError> {
        self.put(&v.to_le_bytes())
    }

    fn sla(&mut self, v: Sla) -> Result<(), SevTioError> {
        self.u64(v.as_u64())
    }

    fn len(&self) -> usize {
        self.pos
    }
}

// --- SLA ---------------------------------------------------------------------------------

/// What an SLA points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlaPageType {
    /// A data page (bit 0 clear).
    Data,
    /// A page of SLAs, ended by EOL (bit 0 set).
    Scatter,
}

/// The size of the page an SLA points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlaPageSize {
    /// 4 KiB (bit 1 clear).
    Size4K,
    /// 2 MiB (bit 1 set).
    Size2M,
}

impl SlaPageSize {
    /// The page size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            SlaPageSize::Size4K => 0x1000,
            SlaPageSize::Size2M => 0x20_0000,
        }
    }
}

/// A scatter list address: a 64-bit page descriptor. Only values with every reserved bit
/// clear can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sla {
    raw: u64,
}

impl Sla {
    /// Bit 0: page type.
    pub const PAGE_TYPE_BIT: u64 = 0x1;
    /// Bit 1: page size.
    pub const PAGE_SIZE_BIT: u64 = 0x2;
    /// Bits 51:12: the page frame number.
    pub const PFN_MASK: u64 = 0x000F_FFFF_FFFF_F000;
    /// Shift of the page frame number.
    pub const PFN_SHIFT: u32 = 12;
    /// Bits 11:2 and 63:52.
    pub const RESERVED_MASK: u64 = 0xFFF0_0000_0000_0FFC;
    /// Largest page frame number (2^40 - 1, the EOL marker's).
    pub const PFN_MAX: u64 = 0xFF_FFFF_FFFF;
    /// The NULL SLA (no buffer).
    pub const NULL: Sla = Sla { raw: 0 };
    /// The end-of-list marker of a scatter list: data, 4 KiB, pfn 2^40 - 1.
    pub const EOL: Sla = Sla { raw: Sla::PFN_MASK };
    /// Size of an SLA in bytes.
    pub const SIZE: usize = 8;

    /// The SLA with this value; reserved bits must be clear.
    pub const fn from_u64(raw: u64) -> Result<Sla, SevTioError> {
        if raw & Sla::RESERVED_MASK != 0 {
            return Err(SevTioError::InvalidSla);
        }
        Ok(Sla { raw })
    }

    /// An SLA of a page; `None` if `pfn` does not fit 40 bits.
    pub const fn new(page_type: SlaPageType, page_size: SlaPageSize, pfn: u64) -> Option<Sla> {
        if pfn > Sla::PFN_MAX {
            return None;
        }
        let t = match page_type {
            SlaPageType::Data => 0,
            SlaPageType::Scatter => Sla::PAGE_TYPE_BIT,
        };
        let s = match page_size {
            SlaPageSize::Size4K => 0,
            SlaPageSize::Size2M => Sla::PAGE_SIZE_BIT,
        };
        // pfn < 2^40, so the shift stays within bits 51:12.
        Some(Sla {
            raw: ((pfn << Sla::PFN_SHIFT) & Sla::PFN_MASK) | t | s,
        })
    }

    /// The SLA of the 4 KiB data page `pfn`; `None` if `pfn` does not fit 40 bits.
    pub const fn data_4k(pfn: u64) -> Option<Sla> {
        Sla::new(SlaPageType::Data, SlaPageSize::Size4K, pfn)
    }

    /// The SLA of the 4 KiB scatter list page `pfn`; `None` if `pfn` does not fit 40 bits.
    pub const fn scatter_4k(pfn: u64) -> Option<Sla> {
        Sla::new(SlaPageType::Scatter, SlaPageSize::Size4K, pfn)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.raw
    }

    /// Data page or scatter list.
    pub const fn page_type(self) -> SlaPageType {
        if self.raw & Sla::PAGE_TYPE_BIT != 0 {
            SlaPageType::Scatter
        } else {
            SlaPageType::Data
        }
    }

    /// 4 KiB or 2 MiB.
    pub const fn page_size(self) -> SlaPageSize {
        if self.raw & Sla::PAGE_SIZE_BIT != 0 {
            SlaPageSize::Size2M
        } else {
            SlaPageSize::Size4K
        }
    }

    /// The page frame number (of 4 KiB pages).
    pub const fn pfn(self) -> u64 {
        (self.raw & Sla::PFN_MASK) >> Sla::PFN_SHIFT
    }

    /// The physical address of the page (pfn * 4 KiB).
    pub const fn address(self) -> u64 {
        self.raw & Sla::PFN_MASK
    }

    /// Whether this is the NULL SLA.
    pub const fn is_null(self) -> bool {
        self.raw == 0
    }

    /// Whether this is the end-of-list marker.
    pub const fn is_eol(self) -> bool {
        self.raw == Sla::EOL.raw
    }
}

/// A context SLA (device or TDI context): neither NULL nor EOL.
fn check_ctx(s: Sla) -> Result<Sla, SevTioError> {
    if s.is_null() {
        Err(SevTioError::NullContext)
    } else if s.is_eol() {
        Err(SevTioError::EolSla)
    } else {
        Ok(s)
    }
}

/// A buffer SLA (the SPDM buffers): NULL allowed (no buffer), EOL not.
fn check_buf(s: Sla) -> Result<Sla, SevTioError> {
    if s.is_eol() {
        Err(SevTioError::EolSla)
    } else {
        Ok(s)
    }
}

// --- Scatter lists -----------------------------------------------------------------------

/// Entries in a 4 KiB scatter list page (the EOL marker included).
pub const SLA_SCATTER_ENTRIES_4K: usize = 512;

/// The entries of a scatter list (EOL excluded), borrowed from its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScatterList<'a> {
    entries: &'a [u8],
}

impl<'a> ScatterList<'a> {
    /// Number of data pages.
    pub fn len(&self) -> usize {
        self.entries.len() / Sla::SIZE
    }

    /// Never true for a parsed list (an empty list is rejected).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The data pages, in order.
    pub fn iter(&self) -> ScatterEntries<'a> {
        ScatterEntries { rest: self.entries }
    }
}

/// Iterator over the entries of a [`ScatterList`].
#[derive(Debug, Clone)]
pub struct ScatterEntries<'a> {
    rest: &'a [u8],
}

impl Iterator for ScatterEntries<'_> {
    type Item = Sla;

    fn next(&mut self) -> Option<Sla> {
        let bytes: [u8; Sla::SIZE] = self.rest.get(..Sla::SIZE)?.try_into().ok()?;
        self.rest = self.rest.get(Sla::SIZE..).unwrap_or(&[]);
        Sla::from_u64(u64::from_le_bytes(bytes)).ok()
    }
}

/// Parses a scatter list page (or as much of it as `page` holds): SLAs of 4 KiB data pages,
/// none NULL, ended by EOL; at least one entry. What follows EOL is ignored.
pub fn parse_scatter_list(page: &[u8]) -> Result<ScatterList<'_>, SevTioError> {
    let mut r = Reader::new(page);
    let mut count: usize = 0;
    loop {
        let raw = r.u64().map_err(|_| SevTioError::InvalidScatterList)?;
        let sla = Sla::from_u64(raw).map_err(|_| SevTioError::InvalidScatterList)?;
        if sla.is_eol() {
            break;
        }
        if sla.is_null()
            || sla.page_type() != SlaPageType::Data
            || sla.page_size() != SlaPageSize::Size4K
        {
            return Err(SevTioError::InvalidScatterList);
        }
        count = count
            .checked_add(1)
            .ok_or(SevTioError::InvalidScatterList)?;
    }
    if count == 0 {
        return Err(SevTioError::InvalidScatterList);
    }
    let len = count
        .checked_mul(Sla::SIZE)
        .ok_or(SevTioError::InvalidScatterList)?;
    Ok(ScatterList {
        entries: page.get(..len).ok_or(SevTioError::InvalidScatterList)?,
    })
}

/// Writes a scatter list (the entries, then EOL); returns its size. The entries must be
/// 4 KiB data pages, not NULL nor EOL, at least one and at most 511.
pub fn encode_scatter_list(entries: &[Sla], out: &mut [u8]) -> Result<usize, SevTioError> {
    if entries.is_empty() || entries.len() >= SLA_SCATTER_ENTRIES_4K {
        return Err(SevTioError::InvalidScatterList);
    }
    let mut w = Writer::new(out);
    for &e in entries {
        if e.is_null()
            || e.is_eol()
            || e.page_type() != SlaPageType::Data
            || e.page_size() != SlaPageSize::Size4K
        {
            return Err(SevTioError::InvalidScatterList);
        }
        w.sla(e)?;
    }
    w.sla(Sla::EOL)?;
    Ok(w.len())
}

// --- SPDM buffers and data objects -------------------------------------------------------

/// Size of the header at the start of every SPDM buffer.
pub const SLA_BUFFER_HEADER_SIZE: usize = 0x40;
/// Buffer flags: the payload is encrypted (iv and authtag are meaningful).
pub const SLA_BUFFER_FLAG_ENCRYPTION: u32 = 0x1;
/// payload_sz is a multiple of this.
pub const SLA_BUFFER_PAYLOAD_ALIGN: usize = 32;
/// Size of the REQ and RESP data object headers.
pub const DOBJ_HEADER_SIZE: usize = 16;
/// Data object ID: an SPDM request from the PSP.
pub const DOBJ_ID_REQ: u32 = 1;
/// Data object ID: the device's SPDM response, written by the host.
pub const DOBJ_ID_RESP: u32 = 2;
/// Data object type: an SPDM message (DOE type 1, CMA/SPDM).
pub const DOBJ_DATA_TYPE_SPDM: u8 = 1;
/// Data object type: a secured SPDM message (DOE type 2, secured CMA/SPDM).
pub const DOBJ_DATA_TYPE_SECURE_SPDM: u8 = 2;
/// Data object version Linux writes: 1.0.
pub const DOBJ_VERSION_MAJOR: u8 = 1;
/// Data object version Linux writes: 1.0.
pub const DOBJ_VERSION_MINOR: u8 = 0;

/// Rounds `n` up to a multiple of 32; `None` on overflow.
pub fn align32(n: usize) -> Option<usize> {
    n.checked_next_multiple_of(SLA_BUFFER_PAYLOAD_ALIGN)
}

/// The `length` the host writes into a RESP object carrying `message_len` bytes: header and
/// message, rounded up to 32 bytes (`None` if that exceeds 32 bits).
pub fn resp_object_len(message_len: usize) -> Option<u32> {
    let n = align32(message_len.checked_add(DOBJ_HEADER_SIZE)?)?;
    u32::try_from(n).ok()
}

/// The largest message a buffer of `buffer_size` bytes (header included) carries in a REQ or
/// RESP object (Linux sizes its DOE response buffer this way).
pub fn max_message_len(buffer_size: usize) -> Option<usize> {
    buffer_size
        .checked_sub(SLA_BUFFER_HEADER_SIZE)?
        .checked_sub(DOBJ_HEADER_SIZE)
}

/// The 0x40-byte header of an SPDM buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferHeader {
    /// Size of the whole buffer, this header included.
    pub capacity_sz: u32,
    /// Size of the payload after this header; a multiple of 32.
    pub payload_sz: u32,
    /// The payload is encrypted (flags bit 0).
    pub encrypted: bool,
    /// IV of the encryption.
    pub iv: [u8; 16],
    /// Authentication tag of the encryption.
    pub authtag: [u8; 16],
}

impl BufferHeader {
    /// An unencrypted header.
    pub const fn new(capacity_sz: u32, payload_sz: u32) -> Self {
        BufferHeader {
            capacity_sz,
            payload_sz,
            encrypted: false,
            iv: [0; 16],
            authtag: [0; 16],
        }
    }

    fn validate(&self) -> Result<(), SevTioError> {
        let capacity = usize::try_from(self.capacity_sz).map_err(|_| SevTioError::TooShort)?;
        let payload = usize::try_from(self.payload_sz).map_err(|_| SevTioError::TooShort)?;
        if payload % SLA_BUFFER_PAYLOAD_ALIGN != 0 {
            return Err(SevTioError::Misaligned);
        }
        let room = capacity
            .checked_sub(SLA_BUFFER_HEADER_SIZE)
            .ok_or(SevTioError::CapacityExceeded)?;
        if payload > room {
            return Err(SevTioError::CapacityExceeded);
        }
        Ok(())
    }

    /// Parses the header at the start of `buf` (which may hold the payload after it): reserved
    /// bytes and flag bits zero, `capacity_sz` at least the header, `payload_sz` a multiple of
    /// 32 that fits `capacity_sz - 0x40`.
    pub fn parse(buf: &[u8]) -> Result<BufferHeader, SevTioError> {
        let mut r = Reader::new(buf);
        let capacity_sz = r.u32()?;
        let payload_sz = r.u32()?;
        let flags = r.u32()?;
        r.zeros(4)?;
        let iv = r.array()?;
        let authtag = r.array()?;
        r.zeros(16)?;
        if flags & !SLA_BUFFER_FLAG_ENCRYPTION != 0 {
            return Err(SevTioError::Reserved);
        }
        let h = BufferHeader {
            capacity_sz,
            payload_sz,
            encrypted: flags & SLA_BUFFER_FLAG_ENCRYPTION != 0,
            iv,
            authtag,
        };
        h.validate()?;
        Ok(h)
    }

    /// Writes the header (after the same checks as [`BufferHeader::parse`]); returns 0x40.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, SevTioError> {
        self.validate()?;
        let mut w = Writer::new(out);
        w.u32(self.capacity_sz)?;
        w.u32(self.payload_sz)?;
        w.u32(if self.encrypted {
            SLA_BUFFER_FLAG_ENCRYPTION
        } else {
            0
        })?;
        w.zeros(4)?;
        w.put(&self.iv)?;
        w.put(&self.authtag)?;
        w.zeros(16)?;
        Ok(w.len())
    }

    /// The payload: the `payload_sz` bytes after the header in `buf` (the buffer's contiguous
    /// view, header included).
    pub fn payload<'a>(&self, buf: &'a [u8]) -> Result<&'a [u8], SevTioError> {
        let len = usize::try_from(self.payload_sz).map_err(|_| SevTioError::TooShort)?;
        let end = SLA_BUFFER_HEADER_SIZE
            .checked_add(len)
            .ok_or(SevTioError::TooShort)?;
        buf.get(SLA_BUFFER_HEADER_SIZE..end)
            .ok_or(SevTioError::TooShort)
    }
}

/// REQ or RESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataObjectId {
    /// An SPDM request from the PSP (ID 1).
    Request,
    /// The device's response, written by the host (ID 2).
    Response,
}

impl DataObjectId {
    /// The wire value.
    pub const fn as_u32(self) -> u32 {
        match self {
            DataObjectId::Request => DOBJ_ID_REQ,
            DataObjectId::Response => DOBJ_ID_RESP,
        }
    }

    /// The ID with this wire value.
    pub const fn from_u32(v: u32) -> Option<DataObjectId> {
        match v {
            DOBJ_ID_REQ => Some(DataObjectId::Request),
            DOBJ_ID_RESP => Some(DataObjectId::Response),
            _ => None,
        }
    }
}

/// What a REQ or RESP object carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpdmDataType {
    /// An SPDM message (sent as DOE data object type 1).
    Spdm,
    /// A secured SPDM message (sent as DOE data object type 2).
    SecuredSpdm,
}

impl SpdmDataType {
    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            SpdmDataType::Spdm => DOBJ_DATA_TYPE_SPDM,
            SpdmDataType::SecuredSpdm => DOBJ_DATA_TYPE_SECURE_SPDM,
        }
    }

    /// The type with this wire value.
    pub const fn from_u8(v: u8) -> Option<SpdmDataType> {
        match v {
            DOBJ_DATA_TYPE_SPDM => Some(SpdmDataType::Spdm),
            DOBJ_DATA_TYPE_SECURE_SPDM => Some(SpdmDataType::SecuredSpdm),
            _ => None,
        }
    }

    /// The PCI-SIG DOE data object type the message travels in (1 CMA/SPDM, 2 secured).
    pub const fn doe_type(self) -> u8 {
        self.as_u8()
    }
}

/// The 16-byte header of a REQ or RESP data object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataObjectHeader {
    /// REQ or RESP.
    pub id: DataObjectId,
    /// Size of the object, this header included.
    pub length: u32,
    /// Minor version of the object structure.
    pub minor: u8,
    /// Major version of the object structure.
    pub major: u8,
    /// SPDM or secured SPDM.
    pub data_type: SpdmDataType,
}

impl DataObjectHeader {
    /// A version 1.0 header for an object of `length` bytes (header included).
    pub const fn new(id: DataObjectId, length: u32, data_type: SpdmDataType) -> Self {
        DataObjectHeader {
            id,
            length,
            minor: DOBJ_VERSION_MINOR,
            major: DOBJ_VERSION_MAJOR,
            data_type,
        }
    }

    /// Parses the object at the start of `buf`; returns its header and the `length - 16`
    /// bytes after the header (for RESP, the message and its padding). Any version is
    /// accepted; `length` must cover the header and lie inside `buf`.
    pub fn parse(buf: &[u8]) -> Result<(DataObjectHeader, &[u8]), SevTioError> {
        let mut r = Reader::new(buf);
        let id = r.u32()?;
        let length = r.u32()?;
        let minor = r.u8()?;
        let major = r.u8()?;
        let data_type = r.u8()?;
        r.zeros(5)?;
        let id = DataObjectId::from_u32(id).ok_or(SevTioError::UnknownObjectId)?;
        let data_type = SpdmDataType::from_u8(data_type).ok_or(SevTioError::UnknownDataType)?;
        let body_len = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_sub(DOBJ_HEADER_SIZE))
            .ok_or(SevTioError::InvalidLength)?;
        let body = r.bytes(body_len)?;
        Ok((
            DataObjectHeader {
                id,
                length,
                minor,
                major,
                data_type,
            },
            body,
        ))
    }

    /// The header in wire order.
    pub fn to_bytes(self) -> [u8; DOBJ_HEADER_SIZE] {
        let [i0, i1, i2, i3] = self.id.as_u32().to_le_bytes();
        let [l0, l1, l2, l3] = self.length.to_le_bytes();
        [
            i0,
            i1,
            i2,
            i3,
            l0,
            l1,
            l2,
            l3,
            self.minor,
            self.major,
            self.data_type.as_u8(),
            0,
            0,
            0,
            0,
            0,
        ]
    }
}

/// A parsed SPDM buffer: its header, the data object in its payload, and the object's body
/// (for RESP, the message followed by its padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpdmBuffer<'a> {
    /// The buffer header.
    pub header: BufferHeader,
    /// The data object's header.
    pub object: DataObjectHeader,
    /// The `object.length - 16` bytes after the object header.
    pub body: &'a [u8],
}

/// Parses an SPDM buffer (its contiguous view, header included): the header, then the data
/// object at the start of the payload, which must fit in `payload_sz` (else
/// [`SevTioError::InvalidLength`]; a `buf` shorter than 0x40 + `payload_sz` is
/// [`SevTioError::TooShort`]).
pub fn parse_spdm_buffer(buf: &[u8]) -> Result<SpdmBuffer<'_>, SevTioError> {
    let header = BufferHeader::parse(buf)?;
    let payload = header.payload(buf)?;
    let (object, body) = DataObjectHeader::parse(payload).map_err(|e| match e {
        SevTioError::TooShort => SevTioError::InvalidLength,
        e => e,
    })?;
    Ok(SpdmBuffer {
        header,
        object,
        body,
    })
}

/// Writes an SPDM buffer carrying `message` in a version 1.0 object: the header (unencrypted,
/// `capacity_sz` as given), the object and the message, zero padding up to `payload_sz`.
/// A RESP object's length is rounded up to 32 bytes (as Linux writes it); a REQ object's is
/// exact. `payload_sz` is the object's length rounded up to 32. Returns the bytes written
/// (0x40 + `payload_sz`); `capacity_sz` must hold them.
pub fn encode_spdm_buffer(
    capacity_sz: u32,
    id: DataObjectId,
    data_type: SpdmDataType,
    message: &[u8],
    out: &mut [u8],
) -> Result<usize, SevTioError> {
    let exact = message
        .len()
        .checked_add(DOBJ_HEADER_SIZE)
        .ok_or(SevTioError::CapacityExceeded)?;
    let object_len = match id {
        DataObjectId::Request => exact,
        DataObjectId::Response => align32(exact).ok_or(SevTioError::CapacityExceeded)?,
    };
    let payload = align32(object_len).ok_or(SevTioError::CapacityExceeded)?;
    let header = BufferHeader::new(
        capacity_sz,
        u32::try_from(payload).map_err(|_| SevTioError::CapacityExceeded)?,
    );
    let object = DataObjectHeader::new(
        id,
        u32::try_from(object_len).map_err(|_| SevTioError::CapacityExceeded)?,
        data_type,
    );
    let total = SLA_BUFFER_HEADER_SIZE
        .checked_add(payload)
        .ok_or(SevTioError::CapacityExceeded)?;
    let mut hdr = [0u8; SLA_BUFFER_HEADER_SIZE];
    header.encode(&mut hdr)?;
    let mut w = Writer::new(out.get_mut(..total).ok_or(SevTioError::BufferTooSmall)?);
    w.put(&hdr)?;
    w.put(&object.to_bytes())?;
    w.put(message)?;
    let pad = total
        .checked_sub(w.len())
        .ok_or(SevTioError::BufferTooSmall)?;
    w.zeros(pad)?;
    Ok(w.len())
}

// --- Status pages ------------------------------------------------------------------------

/// TIO_STATUS page: SEV-TIO was enabled by SNP_INIT_EX.
pub const TIO_STATUS_FLAG_TIO_EN: u32 = 0x1;
/// TIO_STATUS page: TIO_INIT has run.
pub const TIO_STATUS_FLAG_TIO_INIT_DONE: u32 = 0x2;
/// Size of the TIO_STATUS page structure as this codec writes it.
pub const TIO_STATUS_PAGE_SIZE: usize = 64;
/// Smallest `length` accepted (through `tdictx_size`, as Linux requires).
pub const TIO_STATUS_PAGE_MIN_LENGTH: usize = 48;

/// The structure TIO_STATUS writes at `status_paddr`:
///
/// ```text
/// 0x00 u32 length | u32 flags (bit 0 tio_en, bit 1 tio_init_done)
/// 0x08 u32 spdm_req_size_min, _max | spdm_scratch_size_min, _max
/// 0x18 u32 spdm_out_size_min, _max | spdm_rsp_size_min, _max
/// 0x28 u32 devctx_size | tdictx_size | tio_crypto_alg | rsvd[12]      (64 bytes)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TioStatusPage {
    /// SNP_INIT_EX set up the RMP for SEV-TIO.
    pub tio_en: bool,
    /// TIO_INIT has run.
    pub tio_init_done: bool,
    /// Smallest SPDM request buffer, bytes.
    pub spdm_req_size_min: u32,
    /// Largest SPDM request buffer, bytes.
    pub spdm_req_size_max: u32,
    /// Smallest SPDM scratch buffer, bytes.
    pub spdm_scratch_size_min: u32,
    /// Largest SPDM scratch buffer, bytes.
    pub spdm_scratch_size_max: u32,
    /// Smallest SPDM output buffer, bytes.
    pub spdm_out_size_min: u32,
    /// Largest SPDM output buffer, bytes.
    pub spdm_out_size_max: u32,
    /// Smallest SPDM response buffer, bytes.
    pub spdm_rsp_size_min: u32,
    /// Largest SPDM response buffer, bytes.
    pub spdm_rsp_size_max: u32,
    /// Size of a device context, bytes.
    pub devctx_size: u32,
    /// Size of a TDI context, bytes.
    pub tdictx_size: u32,
    /// TIO crypto algorithms supported.
    pub tio_crypto_alg: u32,
}

impl TioStatusPage {
    /// Parses the page: `length` at least 48 (through `tdictx_size`) and within `buf`; the
    /// reserved flag bits, and the reserved bytes `length` covers, zero. Fields `length` does
    /// not cover read as zero; bytes past 64 are ignored (a longer, future structure).
    pub fn parse(buf: &[u8]) -> Result<TioStatusPage, SevTioError> {
        let mut r = Reader::new(buf);
        let length = usize::try_from(r.u32()?).map_err(|_| SevTioError::InvalidLength)?;
        if length < TIO_STATUS_PAGE_MIN_LENGTH {
            return Err(SevTioError::InvalidLength);
        }
        let view = buf.get(..length).ok_or(SevTioError::TooShort)?;
        let mut r = Reader::new(view);
        r.u32()?;
        let flags = r.u32()?;
        if flags & !(TIO_STATUS_FLAG_TIO_EN | TIO_STATUS_FLAG_TIO_INIT_DONE) != 0 {
            return Err(SevTioError::Reserved);
        }
        let mut p = TioStatusPage {
            tio_en: flags & TIO_STATUS_FLAG_TIO_EN != 0,
            tio_init_done: flags & TIO_STATUS_FLAG_TIO_INIT_DONE != 0,
            spdm_req_size_min: r.u32()?,
            spdm_req_size_max: r.u32()?,
            spdm_scratch_size_min: r.u32()?,
            spdm_scratch_size_max: r.u32()?,
            spdm_out_size_min: r.u32()?,
            spdm_out_size_max: r.u32()?,
            spdm_rsp_size_min: r.u32()?,
            spdm_rsp_size_max: r.u32()?,
            devctx_size: r.u32()?,
            tdictx_size: r.u32()?,
            tio_crypto_alg: 0,
        };
        if let Ok(alg) = r.u32() {
            p.tio_crypto_alg = alg;
        }
        let rsvd = r.buf.get(..12).unwrap_or(r.buf);
        if rsvd.iter().any(|&b| b != 0) {
            return Err(SevTioError::Reserved);
        }
        Ok(p)
    }

    /// Writes the 64-byte structure (`length` 64); returns 64.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, SevTioError> {
        let mut w = Writer::new(out);
        w.u32(64)?;
        w.u32(
            if self.tio_en {
                TIO_STATUS_FLAG_TIO_EN
            } else {
                0
            } | if self.tio_init_done {
                TIO_STATUS_FLAG_TIO_INIT_DONE
            } else {
                0
            },
        )?;
        for v in [
            self.spdm_req_size_min,
            self.spdm_req_size_max,
            self.spdm_scratch_size_min,
            self.spdm_scratch_size_max,
            self.spdm_out_size_min,
            self.spdm_out_size_max,
            self.spdm_rsp_size_min,
            self.spdm_rsp_size_max,
            self.devctx_size,
            self.tdictx_size,
            self.tio_crypto_alg,
        ] {
            w.u32(v)?;
        }
        w.zeros(12)?;
        Ok(w.len())
    }
}

/// TDISP state of a TDI, as TIO_TDI_STATUS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TdiState {
    /// CONFIG_UNLOCKED (0).
    ConfigUnlocked,
    /// CONFIG_LOCKED (1).
    ConfigLocked,
    /// RUN (2).
    Run,
    /// ERROR (3).
    Error,
}

impl TdiState {
    /// The state with this wire value.
    pub const fn from_u8(v: u8) -> Option<TdiState> {
        match v {
            0 => Some(TdiState::ConfigUnlocked),
            1 => Some(TdiState::ConfigLocked),
            2 => Some(TdiState::Run),
            3 => Some(TdiState::Error),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            TdiState::ConfigUnlocked => 0,
            TdiState::ConfigLocked => 1,
            TdiState::Run => 2,
            TdiState::Error => 3,
        }
    }
}

/// Size of the TIO_TDI_STATUS page structure as this codec writes it.
pub const TDI_STATUS_PAGE_SIZE: usize = 16;

/// The structure TIO_TDI_STATUS writes at `status_paddr` (posted series' layout):
/// `u32 length | u8 tdisp_state | rsvd[11]` (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TdiStatusPage {
    /// The TDI's TDISP state.
    pub state: TdiState,
}

impl TdiStatusPage {
    /// Parses the page: `length` at least 5 and within `buf`, a state of 0 to 3, the reserved
    /// bytes `length` covers (up to 16) zero.
    pub fn parse(buf: &[u8]) -> Result<TdiStatusPage, SevTioError> {
        let mut r = Reader::new(buf);
        let length = usize::try_from(r.u32()?).map_err(|_| SevTioError::InvalidLength)?;
        if length < 5 {
            return Err(SevTioError::InvalidLength);
        }
        let view = buf.get(..length).ok_or(SevTioError::TooShort)?;
        let mut r = Reader::new(view);
        r.u32()?;
        let state = TdiState::from_u8(r.u8()?).ok_or(SevTioError::InvalidField)?;
        let rsvd = r.buf.get(..11).unwrap_or(r.buf);
        if rsvd.iter().any(|&b| b != 0) {
            return Err(SevTioError::Reserved);
        }
        Ok(TdiStatusPage { state })
    }

    /// Writes the 16-byte structure (`length` 16); returns 16.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, SevTioError> {
        let mut w = Writer::new(out);
        w.u32(16)?;
        w.u8(self.state.as_u8())?;
        w.zeros(11)?;
        Ok(w.len())
    }
}

/// Size of the TIO_DEV_STATUS page structure.
pub const DEV_STATUS_PAGE_SIZE: usize = 16;

/// The structure TIO_DEV_STATUS writes at `status_paddr` (this project's layout, see
/// Documentation/coco/sev-tio-platform.rst):
///
/// ```text
/// 0x00 u32 length (16) | u8 connected | u8 cert_slot | u8 stream_id | u8 spdm_version
/// 0x08 u32 base_asym_algo | u32 base_hash_algo
/// ```
///
/// `cert_slot`, `stream_id`, `spdm_version` (the SPDM version byte, e.g. 0x12) and the
/// algorithms (SPDM ALGORITHMS' BaseAsymSel and BaseHashSel) are those of the connection, 0
/// while the device is not connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DevStatusPage {
    /// TIO_DEV_CONNECT succeeded and no TIO_DEV_DISCONNECT followed.
    pub connected: bool,
    /// The SPDM certificate slot of the session.
    pub cert_slot: u8,
    /// The IDE stream ID of the connection.
    pub stream_id: u8,
    /// The negotiated SPDM version byte.
    pub spdm_version: u8,
    /// The session's signature algorithm (BaseAsymSel).
    pub base_asym_algo: u32,
    /// The session's hash algorithm (BaseHashSel).
    pub base_hash_algo: u32,
}

impl DevStatusPage {
    /// Parses the page: `length` 16, `connected` 0 or 1; bytes past 16 are ignored.
    pub fn parse(buf: &[u8]) -> Result<DevStatusPage, SevTioError> {
        let mut r = Reader::new(buf);
        let length = usize::try_from(r.u32()?).map_err(|_| SevTioError::InvalidLength)?;
        if length != DEV_STATUS_PAGE_SIZE {
            return Err(SevTioError::InvalidLength);
        }
        let connected = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(SevTioError::InvalidField),
        };
        let p = DevStatusPage {
            connected,
            cert_slot: r.u8()?,
            stream_id: r.u8()?,
            spdm_version: r.u8()?,
            base_asym_algo: r.u32()?,
            base_hash_algo: r.u32()?,
        };
        Ok(p)
    }

    /// Writes the 16-byte structure; returns 16.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, SevTioError> {
        let mut w = Writer::new(out);
        w.u32(16)?;
        w.u8(u8::from(self.connected))?;
        w.u8(self.cert_slot)?;
        w.u8(self.stream_id)?;
        w.u8(self.spdm_version)?;
        w.u32(self.base_asym_algo)?;
        w.u32(self.base_hash_algo)?;
        Ok(w.len())
    }
}

// --- Commands ----------------------------------------------------------------------------

/// TIO_DEV_DISCONNECT / TIO_TDI_UNBIND flags: force (do not wait for the device).
pub const TIO_FLAG_FORCE: u32 = 0x1;
/// TIO_DEV_MEASUREMENTS flags: raw bitstream measurements.
pub const TIO_DEV_MEAS_FLAG_RAW_BITSTREAM: u32 = 0x1;
/// TIO_TDI_BIND run_flags: move the TDI to RUN as part of the bind.
pub const TIO_TDI_BIND_RUN_FORCE: u16 = 0x1;
/// TIO_TDI_BIND tdisp_lock_if_flags: the TDISP LOCK_INTERFACE flags (NO_FW_UPDATE 0x1,
/// SYSTEM_CACHE_LINE_SIZE 0x2, LOCK_MSIX 0x4, BIND_P2P 0x8, ALL_REQUEST_REDIRECT 0x10); other
/// bits are reserved.
pub const TIO_TDI_BIND_LOCK_FLAGS_DEFINED: u16 = 0x001F;
/// Size of `spdm_ctrl`.
pub const SPDM_CTRL_SIZE: usize = 32;
/// Size of a TDISP INTERFACE_ID.
pub const INTERFACE_ID_SIZE: usize = 12;
/// Size of the TIO_DEV_MEASUREMENTS nonce.
pub const MEAS_NONCE_SIZE: usize = 32;
/// Highest SPDM certificate slot.
pub const CERT_SLOT_MAX: u8 = 7;

/// The four SPDM buffers of an SPDM-aware command. Any may be NULL (no buffer); none may be
/// EOL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SpdmCtrl {
    /// Request buffer: the PSP writes its SPDM request here (firmware-owned).
    pub req: Sla,
    /// Response buffer: the host writes the device's response here (host-owned).
    pub resp: Sla,
    /// Scratch buffer (firmware-owned).
    pub scratch: Sla,
    /// Output buffer: certificates, measurements, the interface report (firmware-owned).
    pub output: Sla,
}

impl SpdmCtrl {
    fn parse(r: &mut Reader<'_>) -> Result<SpdmCtrl, SevTioError> {
        Ok(SpdmCtrl {
            req: check_buf(r.sla()?)?,
            resp: check_buf(r.sla()?)?,
            scratch: check_buf(r.sla()?)?,
            output: check_buf(r.sla()?)?,
        })
    }

    fn validate(&self) -> Result<(), SevTioError> {
        for s in [self.req, self.resp, self.scratch, self.output] {
            check_buf(s)?;
        }
        Ok(())
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), SevTioError> {
        w.sla(self.req)?;
        w.sla(self.resp)?;
        w.sla(self.scratch)?;
        w.sla(self.output)
    }
}

/// A TDISP INTERFACE_ID (the reserved u64 after the function ID is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InterfaceId {
    /// Bits 15:0 Requester ID, 23:16 segment, 24 segment valid; 31:25 reserved.
    pub function_id: u32,
}

impl InterfaceId {
    /// Function ID bits TDISP defines.
    pub const FUNCTION_ID_DEFINED: u32 = 0x01FF_FFFF;
    /// Function ID: segment valid.
    pub const SEGMENT_VALID: u32 = 0x0100_0000;

    /// The interface of the function `rid`, in `segment` if given.
    pub fn new(rid: u16, segment: Option<u8>) -> InterfaceId {
        let seg = segment.map_or(0, |s| {
            u32::from_le_bytes([0, 0, s, 0]) | InterfaceId::SEGMENT_VALID
        });
        InterfaceId {
            function_id: u32::from(rid) | seg,
        }
    }

    /// The Requester ID.
    pub fn rid(&self) -> u16 {
        let [a, b, _, _] = self.function_id.to_le_bytes();
        u16::from_le_bytes([a, b])
    }

    /// The segment, if the segment-valid bit is set.
    pub fn segment(&self) -> Option<u8> {
        let [_, _, s, _] = self.function_id.to_le_bytes();
        (self.function_id & InterfaceId::SEGMENT_VALID != 0).then_some(s)
    }

    fn validate(&self) -> Result<(), SevTioError> {
        if self.function_id & !InterfaceId::FUNCTION_ID_DEFINED != 0 {
            return Err(SevTioError::InvalidField);
        }
        Ok(())
    }
}

/// A TIO command buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// TIO_STATUS.
    TioStatus {
        /// Physical address of the page the PSP writes a [`TioStatusPage`] to.
        status_paddr: u64,
    },
    /// TIO_INIT.
    TioInit,
    /// TIO_DEV_CREATE.
    DevCreate {
        /// The device context.
        dev_ctx: Sla,
        /// Routing ID of the device (function 0).
        device_id: u16,
        /// The root port's Port Number (Link Capabilities).
        root_port_id: u16,
        /// PCI segment.
        segment: u8,
    },
    /// TIO_DEV_RECLAIM.
    DevReclaim {
        /// The device context.
        dev_ctx: Sla,
    },
    /// TIO_DEV_CONNECT.
    DevConnect {
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
        /// Traffic classes to secure; bit 0 (TC0) is required.
        tc_mask: u8,
        /// SPDM certificate slot for the session (0 to 7).
        cert_slot: u8,
        /// IDE Stream ID of each traffic class in `tc_mask`.
        ide_stream_id: [u8; 8],
    },
    /// TIO_DEV_DISCONNECT.
    DevDisconnect {
        /// Flags bit 0: force.
        force: bool,
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
    },
    /// TIO_DEV_STATUS.
    DevStatus {
        /// The device context.
        dev_ctx: Sla,
        /// Physical address of the page the PSP writes the device status to.
        status_paddr: u64,
    },
    /// TIO_DEV_MEASUREMENTS.
    DevMeasurements {
        /// Flags bit 0: raw bitstream measurements.
        raw_bitstream: bool,
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
        /// Nonce for GET_MEASUREMENTS.
        nonce: [u8; MEAS_NONCE_SIZE],
    },
    /// TIO_DEV_CERTIFICATES.
    DevCertificates {
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
    },
    /// TIO_TDI_CREATE.
    TdiCreate {
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
        /// The TDI's INTERFACE_ID (host Requester ID).
        interface_id: InterfaceId,
    },
    /// TIO_TDI_RECLAIM.
    TdiReclaim {
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
    },
    /// TIO_TDI_BIND.
    TdiBind {
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
        /// Physical address of the guest context page.
        gctx_paddr: u64,
        /// Routing ID of the TDI in the guest.
        guest_device_id: u16,
        /// TDISP LOCK_INTERFACE flags ([`TIO_TDI_BIND_LOCK_FLAGS_DEFINED`]).
        lock_flags: u16,
        /// Run flags ([`TIO_TDI_BIND_RUN_FORCE`]).
        run_flags: u16,
    },
    /// TIO_TDI_UNBIND.
    TdiUnbind {
        /// Flags bit 0: force.
        force: bool,
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
        /// Physical address of the guest context page.
        gctx_paddr: u64,
    },
    /// TIO_TDI_REPORT.
    TdiReport {
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
        /// Physical address of the guest context page.
        gctx_paddr: u64,
    },
    /// TIO_TDI_STATUS.
    TdiStatus {
        /// SPDM buffers.
        spdm: SpdmCtrl,
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
        /// Physical address of the page the PSP writes a [`TdiStatusPage`] to.
        status_paddr: u64,
    },
    /// TIO_TDI_INFO.
    TdiInfo {
        /// The device context.
        dev_ctx: Sla,
        /// The TDI context.
        tdi_ctx: Sla,
        /// Physical address of the page the PSP writes the TDI information to.
        status_paddr: u64,
    },
}

/// Size of the command buffer of `cmd`, or `None` for a command this codec does not know.
pub fn command_size(cmd: u16) -> Option<usize> {
    Some(match cmd {
        SEV_CMD_TIO_STATUS | SEV_CMD_TIO_INIT | SEV_CMD_TIO_DEV_RECLAIM => 16,
        SEV_CMD_TIO_DEV_CREATE | SEV_CMD_TIO_DEV_STATUS | SEV_CMD_TIO_TDI_RECLAIM => 32,
        SEV_CMD_TIO_DEV_DISCONNECT
        | SEV_CMD_TIO_DEV_CERTIFICATES
        | SEV_CMD_TIO_TDI_CREATE
        | SEV_CMD_TIO_TDI_INFO => 48,
        SEV_CMD_TIO_TDI_UNBIND | SEV_CMD_TIO_TDI_REPORT | SEV_CMD_TIO_TDI_STATUS => 64,
        SEV_CMD_TIO_DEV_CONNECT | SEV_CMD_TIO_DEV_MEASUREMENTS | SEV_CMD_TIO_TDI_BIND => 80,
        _ => return None,
    })
}

/// The `length` field at the start of a command buffer (how many bytes to read before
/// parsing), or `None` if `buf` holds fewer than 4 bytes.
pub fn peek_length(buf: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(..4)?.try_into().ok()?))
}

fn flag(flags: u32, bit: u32) -> Result<bool, SevTioError> {
    if flags & !bit != 0 {
        return Err(SevTioError::Reserved);
    }
    Ok(flags & bit != 0)
}

impl Command {
    /// The command ID.
    pub fn id(&self) -> u16 {
        match self {
            Command::TioStatus { .. } => SEV_CMD_TIO_STATUS,
            Command::TioInit => SEV_CMD_TIO_INIT,
            Command::DevCreate { .. } => SEV_CMD_TIO_DEV_CREATE,
            Command::DevReclaim { .. } => SEV_CMD_TIO_DEV_RECLAIM,
            Command::DevConnect { .. } => SEV_CMD_TIO_DEV_CONNECT,
            Command::DevDisconnect { .. } => SEV_CMD_TIO_DEV_DISCONNECT,
            Command::DevStatus { .. } => SEV_CMD_TIO_DEV_STATUS,
            Command::DevMeasurements { .. } => SEV_CMD_TIO_DEV_MEASUREMENTS,
            Command::DevCertificates { .. } => SEV_CMD_TIO_DEV_CERTIFICATES,
            Command::TdiCreate { .. } => SEV_CMD_TIO_TDI_CREATE,
            Command::TdiReclaim { .. } => SEV_CMD_TIO_TDI_RECLAIM,
            Command::TdiBind { .. } => SEV_CMD_TIO_TDI_BIND,
            Command::TdiUnbind { .. } => SEV_CMD_TIO_TDI_UNBIND,
            Command::TdiReport { .. } => SEV_CMD_TIO_TDI_REPORT,
            Command::TdiStatus { .. } => SEV_CMD_TIO_TDI_STATUS,
            Command::TdiInfo { .. } => SEV_CMD_TIO_TDI_INFO,
        }
    }

    /// The command's name, for logs.
    pub fn name(&self) -> &'static str {
        command_name(self.id())
    }

    /// Size of the command buffer.
    pub fn size(&self) -> usize {
        command_size(self.id()).unwrap_or(0)
    }

    /// The SPDM buffers, for the commands that may talk to the device (and so may return
    /// SPDM_REQUEST).
    pub fn spdm_ctrl(&self) -> Option<&SpdmCtrl> {
        match self {
            Command::DevConnect { spdm, .. }
            | Command::DevDisconnect { spdm, .. }
            | Command::DevMeasurements { spdm, .. }
            | Command::DevCertificates { spdm, .. }
            | Command::TdiBind { spdm, .. }
            | Command::TdiUnbind { spdm, .. }
            | Command::TdiReport { spdm, .. }
            | Command::TdiStatus { spdm, .. } => Some(spdm),
            _ => None,
        }
    }

    /// The device context the command names.
    pub fn dev_ctx(&self) -> Option<Sla> {
        match *self {
            Command::TioStatus { .. } | Command::TioInit => None,
            Command::DevCreate { dev_ctx, .. }
            | Command::DevReclaim { dev_ctx }
            | Command::DevConnect { dev_ctx, .. }
            | Command::DevDisconnect { dev_ctx, .. }
            | Command::DevStatus { dev_ctx, .. }
            | Command::DevMeasurements { dev_ctx, .. }
            | Command::DevCertificates { dev_ctx, .. }
            | Command::TdiCreate { dev_ctx, .. }
            | Command::TdiReclaim { dev_ctx, .. }
            | Command::TdiBind { dev_ctx, .. }
            | Command::TdiUnbind { dev_ctx, .. }
            | Command::TdiReport { dev_ctx, .. }
            | Command::TdiStatus { dev_ctx, .. }
            | Command::TdiInfo { dev_ctx, .. } => Some(dev_ctx),
        }
    }

    /// The TDI context the command names.
    pub fn tdi_ctx(&self) -> Option<Sla> {
        match *self {
            Command::TdiCreate { tdi_ctx, .. }
            | Command::TdiReclaim { tdi_ctx, .. }
            | Command::TdiBind { tdi_ctx, .. }
            | Command::TdiUnbind { tdi_ctx, .. }
            | Command::TdiReport { tdi_ctx, .. }
            | Command::TdiStatus { tdi_ctx, .. }
            | Command::TdiInfo { tdi_ctx, .. } => Some(tdi_ctx),
            _ => None,
        }
    }

    /// Checks what [`Command::parse`] checks beyond the byte layout: context SLAs neither NULL
    /// nor EOL, SPDM buffer SLAs not EOL, TC0 in `tc_mask`, a certificate slot of 0 to 7, no
    /// reserved lock or run flag, a function ID without reserved bits.
    pub fn validate(&self) -> Result<(), SevTioError> {
        if let Some(spdm) = self.spdm_ctrl() {
            spdm.validate()?;
        }
        if let Some(d) = self.dev_ctx() {
            check_ctx(d)?;
        }
        if let Some(t) = self.tdi_ctx() {
            check_ctx(t)?;
        }
        match self {
            Command::DevConnect {
                tc_mask, cert_slot, ..
            } if tc_mask & 1 == 0 || *cert_slot > CERT_SLOT_MAX => Err(SevTioError::InvalidField),
            Command::TdiCreate { interface_id, .. } => interface_id.validate(),
            Command::TdiBind {
                lock_flags,
                run_flags,
                ..
            } if lock_flags & !TIO_TDI_BIND_LOCK_FLAGS_DEFINED != 0
                || run_flags & !TIO_TDI_BIND_RUN_FORCE != 0 =>
            {
                Err(SevTioError::Reserved)
            }
            _ => Ok(()),
        }
    }

    /// Parses the command buffer of command `cmd` (the ID comes from cmdresp, not the
    /// buffer). The buffer must be exactly the command's size and its length field must say
    /// so; reserved bytes and bits must be zero; see [`Command::validate`] for the rest.
    pub fn parse(cmd: u16, buf: &[u8]) -> Result<Command, SevTioError> {
        let size = command_size(cmd).ok_or(SevTioError::UnknownCommand)?;
        if buf.len() < size {
            return Err(SevTioError::TooShort);
        }
        if buf.len() > size {
            return Err(SevTioError::TrailingBytes);
        }
        let mut r = Reader::new(buf);
        let len = usize::try_from(r.u32()?).map_err(|_| SevTioError::InvalidLength)?;
        if len != size {
            return Err(SevTioError::InvalidLength);
        }
        let c = match cmd {
            SEV_CMD_TIO_STATUS => {
                r.zeros(4)?;
                Command::TioStatus {
                    status_paddr: r.u64()?,
                }
            }
            SEV_CMD_TIO_INIT => {
                r.zeros(12)?;
                Command::TioInit
            }
            SEV_CMD_TIO_DEV_CREATE => {
                r.zeros(4)?;
                let dev_ctx = r.sla()?;
                let device_id = r.u16()?;
                let root_port_id = r.u16()?;
                let segment = r.u8()?;
                r.zeros(11)?;
                Command::DevCreate {
                    dev_ctx,
                    device_id,
                    root_port_id,
                    segment,
                }
            }
            SEV_CMD_TIO_DEV_RECLAIM => {
                r.zeros(4)?;
                Command::DevReclaim { dev_ctx: r.sla()? }
            }
            SEV_CMD_TIO_DEV_CONNECT => {
                r.zeros(4)?;
                let spdm = SpdmCtrl::parse(&mut r)?;
                r.zeros(8)?;
                let dev_ctx = r.sla()?;
                let tc_mask = r.u8()?;
                let cert_slot = r.u8()?;
                r.zeros(6)?;
                let ide_stream_id = r.array()?;
                r.zeros(8)?;
                Command::DevConnect {
                    spdm,
                    dev_ctx,
                    tc_mask,
                    cert_slot,
                    ide_stream_id,
                }
            }
            SEV_CMD_TIO_DEV_DISCONNECT => Command::DevDisconnect {
                force: flag(r.u32()?, TIO_FLAG_FORCE)?,
                spdm: SpdmCtrl::parse(&mut r)?,
                dev_ctx: r.sla()?,
            },
            SEV_CMD_TIO_DEV_STATUS => {
                r.zeros(4)?;
                let dev_ctx = r.sla()?;
                let status_paddr = r.u64()?;
                r.zeros(8)?;
                Command::DevStatus {
                    dev_ctx,
                    status_paddr,
                }
            }
            SEV_CMD_TIO_DEV_MEASUREMENTS => Command::DevMeasurements {
                raw_bitstream: flag(r.u32()?, TIO_DEV_MEAS_FLAG_RAW_BITSTREAM)?,
                spdm: SpdmCtrl::parse(&mut r)?,
                dev_ctx: r.sla()?,
                nonce: r.array()?,
            },
            SEV_CMD_TIO_DEV_CERTIFICATES => {
                r.zeros(4)?;
                Command::DevCertificates {
                    spdm: SpdmCtrl::parse(&mut r)?,
                    dev_ctx: r.sla()?,
                }
            }
            SEV_CMD_TIO_TDI_CREATE => {
                r.zeros(4)?;
                let dev_ctx = r.sla()?;
                let tdi_ctx = r.sla()?;
                let function_id = r.u32()?;
                r.zeros(8)?;
                r.zeros(12)?;
                Command::TdiCreate {
                    dev_ctx,
                    tdi_ctx,
                    interface_id: InterfaceId { function_id },
                }
            }
            SEV_CMD_TIO_TDI_RECLAIM => {
                r.zeros(4)?;
                let dev_ctx = r.sla()?;
                let tdi_ctx = r.sla()?;
                r.zeros(8)?;
                Command::TdiReclaim { dev_ctx, tdi_ctx }
            }
            SEV_CMD_TIO_TDI_BIND => {
                r.zeros(4)?;
                let c = Command::TdiBind {
                    spdm: SpdmCtrl::parse(&mut r)?,
                    dev_ctx: r.sla()?,
                    tdi_ctx: r.sla()?,
                    gctx_paddr: r.u64()?,
                    guest_device_id: r.u16()?,
                    lock_flags: r.u16()?,
                    run_flags: r.u16()?,
                };
                r.zeros(10)?;
                c
            }
            SEV_CMD_TIO_TDI_UNBIND => Command::TdiUnbind {
                force: flag(r.u32()?, TIO_FLAG_FORCE)?,
                spdm: SpdmCtrl::parse(&mut r)?,
                dev_ctx: r.sla()?,
                tdi_ctx: r.sla()?,
                gctx_paddr: r.u64()?,
            },
            SEV_CMD_TIO_TDI_REPORT => {
                r.zeros(4)?;
                Command::TdiReport {
                    spdm: SpdmCtrl::parse(&mut r)?,
                    dev_ctx: r.sla()?,
                    tdi_ctx: r.sla()?,
                    gctx_paddr: r.u64()?,
                }
            }
            SEV_CMD_TIO_TDI_STATUS => {
                r.zeros(4)?;
                Command::TdiStatus {
                    spdm: SpdmCtrl::parse(&mut r)?,
                    dev_ctx: r.sla()?,
                    tdi_ctx: r.sla()?,
                    status_paddr: r.u64()?,
                }
            }
            SEV_CMD_TIO_TDI_INFO => {
                r.zeros(4)?;
                let dev_ctx = r.sla()?;
                let tdi_ctx = r.sla()?;
                let status_paddr = r.u64()?;
                r.zeros(16)?;
                Command::TdiInfo {
                    dev_ctx,
                    tdi_ctx,
                    status_paddr,
                }
            }
            _ => return Err(SevTioError::UnknownCommand),
        };
        r.finish()?;
        c.validate()?;
        Ok(c)
    }

    /// Writes the command buffer (after [`Command::validate`]); returns its size.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, SevTioError> {
        self.validate()?;
        let size = self.size();
        let mut w = Writer::new(out.get_mut(..size).ok_or(SevTioError::BufferTooSmall)?);
        w.u32(u32::try_from(size).map_err(|_| SevTioError::InvalidLength)?)?;
        match self {
            Command::TioStatus { status_paddr } => {
                w.zeros(4)?;
                w.u64(*status_paddr)?;
            }
            Command::TioInit => w.zeros(12)?,
            Command::DevCreate {
                dev_ctx,
                device_id,
                root_port_id,
                segment,
            } => {
                w.zeros(4)?;
                w.sla(*dev_ctx)?;
                w.u16(*device_id)?;
                w.u16(*root_port_id)?;
                w.u8(*segment)?;
                w.zeros(11)?;
            }
            Command::DevReclaim { dev_ctx } => {
                w.zeros(4)?;
                w.sla(*dev_ctx)?;
            }
            Command::DevConnect {
                spdm,
                dev_ctx,
                tc_mask,
                cert_slot,
                ide_stream_id,
            } => {
                w.zeros(4)?;
                spdm.encode(&mut w)?;
                w.zeros(8)?;
                w.sla(*dev_ctx)?;
                w.u8(*tc_mask)?;
                w.u8(*cert_slot)?;
                w.zeros(6)?;
                w.put(ide_stream_id)?;
                w.zeros(8)?;
            }
            Command::DevDisconnect {
                force,
                spdm,
                dev_ctx,
            } => {
                w.u32(if *force { TIO_FLAG_FORCE } else { 0 })?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
            }
            Command::DevStatus {
                dev_ctx,
                status_paddr,
            } => {
                w.zeros(4)?;
                w.sla(*dev_ctx)?;
                w.u64(*status_paddr)?;
                w.zeros(8)?;
            }
            Command::DevMeasurements {
                raw_bitstream,
                spdm,
                dev_ctx,
                nonce,
            } => {
                w.u32(if *raw_bitstream {
                    TIO_DEV_MEAS_FLAG_RAW_BITSTREAM
                } else {
                    0
                })?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
                w.put(nonce)?;
            }
            Command::DevCertificates { spdm, dev_ctx } => {
                w.zeros(4)?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
            }
            Command::TdiCreate {
                dev_ctx,
                tdi_ctx,
                interface_id,
            } => {
                w.zeros(4)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.u32(interface_id.function_id)?;
                w.zeros(8)?;
                w.zeros(12)?;
            }
            Command::TdiReclaim { dev_ctx, tdi_ctx } => {
                w.zeros(4)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.zeros(8)?;
            }
            Command::TdiBind {
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr,
                guest_device_id,
                lock_flags,
                run_flags,
            } => {
                w.zeros(4)?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.u64(*gctx_paddr)?;
                w.u16(*guest_device_id)?;
                w.u16(*lock_flags)?;
                w.u16(*run_flags)?;
                w.zeros(10)?;
            }
            Command::TdiUnbind {
                force,
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr,
            } => {
                w.u32(if *force { TIO_FLAG_FORCE } else { 0 })?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.u64(*gctx_paddr)?;
            }
            Command::TdiReport {
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr,
            } => {
                w.zeros(4)?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.u64(*gctx_paddr)?;
            }
            Command::TdiStatus {
                spdm,
                dev_ctx,
                tdi_ctx,
                status_paddr,
            } => {
                w.zeros(4)?;
                spdm.encode(&mut w)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.u64(*status_paddr)?;
            }
            Command::TdiInfo {
                dev_ctx,
                tdi_ctx,
                status_paddr,
            } => {
                w.zeros(4)?;
                w.sla(*dev_ctx)?;
                w.sla(*tdi_ctx)?;
                w.u64(*status_paddr)?;
                w.zeros(16)?;
            }
        }
        if w.len() != size {
            return Err(SevTioError::InvalidLength);
        }
        Ok(w.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sla(pfn: u64) -> Sla {
        Sla::data_4k(pfn).unwrap()
    }

    fn spdm() -> SpdmCtrl {
        SpdmCtrl {
            req: sla(0x11),
            resp: sla(0x22),
            scratch: Sla::scatter_4k(0x33).unwrap(),
            output: sla(0x44),
        }
    }

    fn le64(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn le16(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
    }

    fn check_spdm_ctrl(b: &[u8], off: usize) {
        assert_eq!(le64(b, off), 0x11 << 12);
        assert_eq!(le64(b, off + 8), 0x22 << 12);
        assert_eq!(le64(b, off + 16), (0x33 << 12) | 1);
        assert_eq!(le64(b, off + 24), 0x44 << 12);
    }

    fn encode(c: &Command) -> ([u8; 128], usize) {
        let mut out = [0xAAu8; 128];
        let n = c.encode(&mut out).unwrap();
        assert_eq!(Command::parse(c.id(), &out[..n]), Ok(*c));
        assert_eq!(le32(&out, 0) as usize, n);
        (out, n)
    }

    #[test]
    fn dev_status_page() {
        let p = DevStatusPage {
            connected: true,
            cert_slot: 2,
            stream_id: 5,
            spdm_version: 0x12,
            base_asym_algo: 0x80,
            base_hash_algo: 0x2,
        };
        let mut out = [0xAAu8; 20];
        assert_eq!(p.encode(&mut out), Ok(16));
        assert_eq!(
            &out[..16],
            &[16, 0, 0, 0, 1, 2, 5, 0x12, 0x80, 0, 0, 0, 2, 0, 0, 0]
        );
        assert_eq!(DevStatusPage::parse(&out[..16]), Ok(p));
        assert_eq!(p.encode(&mut out[..15]), Err(SevTioError::BufferTooSmall));
        let mut bad = out;
        bad[4] = 2;
        assert_eq!(DevStatusPage::parse(&bad), Err(SevTioError::InvalidField));

        let mut bad = out;
        bad[0] = 17;
        assert_eq!(DevStatusPage::parse(&bad), Err(SevTioError::InvalidLength));
        assert_eq!(DevStatusPage::parse(&out[..10]), Err(SevTioError::TooShort));
        assert_eq!(
            DevStatusPage::parse(&{
                let mut b = [0u8; 16];
                DevStatusPage::default().encode(&mut b).unwrap();
                b
            }),
            Ok(DevStatusPage::default())
        );
    }

    #[test]
    fn sizes_match_the_c_structures() {
        // sizeof() of Linux's sev_data_tio_* (mainline and AMD's phase-2 series).
        let expect = [
            (SEV_CMD_TIO_STATUS, 16),
            (SEV_CMD_TIO_INIT, 16),
            (SEV_CMD_TIO_DEV_CREATE, 32),
            (SEV_CMD_TIO_DEV_RECLAIM, 16),
            (SEV_CMD_TIO_DEV_CONNECT, 80),
            (SEV_CMD_TIO_DEV_DISCONNECT, 48),
            (SEV_CMD_TIO_DEV_STATUS, 32),
            (SEV_CMD_TIO_DEV_MEASUREMENTS, 80),
            (SEV_CMD_TIO_DEV_CERTIFICATES, 48),
            (SEV_CMD_TIO_TDI_CREATE, 48),
            (SEV_CMD_TIO_TDI_RECLAIM, 32),
            (SEV_CMD_TIO_TDI_BIND, 80),
            (SEV_CMD_TIO_TDI_UNBIND, 64),
            (SEV_CMD_TIO_TDI_REPORT, 64),
            (SEV_CMD_TIO_TDI_STATUS, 64),
            (SEV_CMD_TIO_TDI_INFO, 48),
        ];
        for (cmd, size) in expect {
            assert_eq!(command_size(cmd), Some(size), "{}", command_name(cmd));
            assert!(size <= SEV_TIO_MAX_COMMAND_LENGTH);
        }
        assert_eq!(TIO_COMMANDS.len(), expect.len());
        for cmd in [0x0D9, 0x0E0, 0x0E1, 0x0E2, 0x0E4, 0, 0x7FF] {
            assert_eq!(command_size(cmd), None);
            assert_eq!(
                Command::parse(cmd, &[0; 16]),
                Err(SevTioError::UnknownCommand)
            );
        }
    }

    #[test]
    fn dev_create_and_connect_layouts() {
        let (b, n) = encode(&Command::DevCreate {
            dev_ctx: sla(0x1234),
            device_id: 0x0100,
            root_port_id: 3,
            segment: 7,
        });
        assert_eq!(n, 32);
        assert_eq!(le64(&b, 8), 0x1234 << 12);
        assert_eq!(le16(&b, 16), 0x0100);
        assert_eq!(le16(&b, 18), 3);
        assert_eq!(b[20], 7);
        assert!(b[21..32].iter().all(|&x| x == 0));

        let (b, n) = encode(&Command::DevConnect {
            spdm: spdm(),
            dev_ctx: sla(0x55),
            tc_mask: 0x3,
            cert_slot: 2,
            ide_stream_id: [1, 2, 3, 4, 5, 6, 7, 8],
        });
        assert_eq!(n, 80);
        check_spdm_ctrl(&b, 8);
        assert!(b[40..48].iter().all(|&x| x == 0));
        assert_eq!(le64(&b, 48), 0x55 << 12);
        assert_eq!((b[56], b[57]), (3, 2));
        assert!(b[58..64].iter().all(|&x| x == 0));
        assert_eq!(&b[64..72], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(b[72..80].iter().all(|&x| x == 0));
    }

    #[test]
    fn disconnect_measurements_layouts() {
        let (b, n) = encode(&Command::DevDisconnect {
            force: true,
            spdm: spdm(),
            dev_ctx: sla(0x55),
        });
        assert_eq!(n, 48);
        assert_eq!(le32(&b, 4), TIO_FLAG_FORCE);
        check_spdm_ctrl(&b, 8);
        assert_eq!(le64(&b, 40), 0x55 << 12);

        let (b, n) = encode(&Command::DevMeasurements {
            raw_bitstream: true,
            spdm: spdm(),
            dev_ctx: sla(0x55),
            nonce: [9; 32],
        });
        assert_eq!(n, 80);
        assert_eq!(le32(&b, 4), 1);
        assert_eq!(le64(&b, 40), 0x55 << 12);
        assert_eq!(&b[48..80], &[9; 32]);
    }

    #[test]
    fn tdi_layouts() {
        let (b, n) = encode(&Command::TdiCreate {
            dev_ctx: sla(1),
            tdi_ctx: sla(2),
            interface_id: InterfaceId::new(0x0108, Some(0x12)),
        });
        assert_eq!(n, 48);
        assert_eq!(le64(&b, 8), 1 << 12);
        assert_eq!(le64(&b, 16), 2 << 12);
        assert_eq!(le32(&b, 24), 0x0112_0108);
        assert!(b[28..48].iter().all(|&x| x == 0));

        let (b, n) = encode(&Command::TdiBind {
            spdm: spdm(),
            dev_ctx: sla(1),
            tdi_ctx: sla(2),
            gctx_paddr: 0x1_2345_6000,
            guest_device_id: 0x0800,
            lock_flags: 0x15,
            run_flags: TIO_TDI_BIND_RUN_FORCE,
        });
        assert_eq!(n, 80);
        check_spdm_ctrl(&b, 8);
        assert_eq!(le64(&b, 40), 1 << 12);
        assert_eq!(le64(&b, 48), 2 << 12);
        assert_eq!(le64(&b, 56), 0x1_2345_6000);
        assert_eq!(
            (le16(&b, 64), le16(&b, 66), le16(&b, 68)),
            (0x0800, 0x15, 1)
        );
        assert!(b[70..80].iter().all(|&x| x == 0));

        let (b, n) = encode(&Command::TdiInfo {
            dev_ctx: sla(1),
            tdi_ctx: sla(2),
            status_paddr: 0xABC000,
        });
        assert_eq!(n, 48);
        assert_eq!(le64(&b, 24), 0xABC000);

        let (b, n) = encode(&Command::DevStatus {
            dev_ctx: sla(1),
            status_paddr: 0xABC000,
        });
        assert_eq!(n, 32);
        assert_eq!(le64(&b, 16), 0xABC000);

        let (b, n) = encode(&Command::TdiUnbind {
            force: true,
            spdm: spdm(),
            dev_ctx: sla(1),
            tdi_ctx: sla(2),
            gctx_paddr: 0x5000,
        });
        assert_eq!(n, 64);
        assert_eq!(le32(&b, 4), 1);
        assert_eq!(le64(&b, 56), 0x5000);
    }

    #[test]
    fn parse_rejects() {
        let c = Command::DevReclaim { dev_ctx: sla(9) };
        let (mut b, n) = encode(&c);
        assert_eq!(n, 16);
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..15]),
            Err(SevTioError::TooShort)
        );
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..17]),
            Err(SevTioError::TrailingBytes)
        );
        b[0] = 17;
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..16]),
            Err(SevTioError::InvalidLength)
        );
        b[0] = 16;
        b[5] = 1;
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..16]),
            Err(SevTioError::Reserved)
        );
        b[5] = 0;
        b[8] = 0x04; // SLA reserved bit 2.
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..16]),
            Err(SevTioError::InvalidSla)
        );
        b[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..16]),
            Err(SevTioError::NullContext)
        );
        b[8..16].copy_from_slice(&Sla::EOL.as_u64().to_le_bytes());
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_RECLAIM, &b[..16]),
            Err(SevTioError::EolSla)
        );

        // TC0 is required; slot 8 does not exist.
        let mut conn = Command::DevConnect {
            spdm: spdm(),
            dev_ctx: sla(1),
            tc_mask: 2,
            cert_slot: 0,
            ide_stream_id: [0; 8],
        };
        assert_eq!(conn.encode(&mut [0; 80]), Err(SevTioError::InvalidField));
        if let Command::DevConnect {
            tc_mask, cert_slot, ..
        } = &mut conn
        {
            *tc_mask = 1;
            *cert_slot = 8;
        }
        assert_eq!(conn.encode(&mut [0; 80]), Err(SevTioError::InvalidField));
        // Unknown flags.
        let (mut b, _) = encode(&Command::DevDisconnect {
            force: false,
            spdm: SpdmCtrl::default(),
            dev_ctx: sla(1),
        });
        b[4] = 2;
        assert_eq!(
            Command::parse(SEV_CMD_TIO_DEV_DISCONNECT, &b[..48]),
            Err(SevTioError::Reserved)
        );
        // An EOL SPDM buffer.
        let bad = Command::DevCertificates {
            spdm: SpdmCtrl {
                output: Sla::EOL,
                ..SpdmCtrl::default()
            },
            dev_ctx: sla(1),
        };
        assert_eq!(bad.encode(&mut [0; 48]), Err(SevTioError::EolSla));
        assert_eq!(
            Command::TioInit.encode(&mut [0; 15]),
            Err(SevTioError::BufferTooSmall)
        );
        let tdi = Command::TdiCreate {
            dev_ctx: sla(1),
            tdi_ctx: sla(2),
            interface_id: InterfaceId {
                function_id: 0x0200_0000,
            },
        };
        assert_eq!(tdi.encode(&mut [0; 48]), Err(SevTioError::InvalidField));
    }

    #[test]
    fn sla_encoding() {
        assert_eq!(Sla::EOL.as_u64(), 0x000F_FFFF_FFFF_F000);
        assert_eq!(Sla::EOL.pfn(), (1 << 40) - 1);
        assert_eq!(Sla::data_4k(Sla::PFN_MAX), Some(Sla::EOL));
        assert_eq!(Sla::data_4k(1 << 40), None);
        let s = Sla::new(SlaPageType::Scatter, SlaPageSize::Size2M, 0x200).unwrap();
        assert_eq!(s.as_u64(), 0x20_0003);
        assert_eq!(s.address(), 0x20_0000);
        assert_eq!(s.page_size().bytes(), 0x20_0000);
        assert_eq!(Sla::from_u64(s.as_u64()), Ok(s));
        assert_eq!(Sla::from_u64(1 << 52), Err(SevTioError::InvalidSla));
        assert_eq!(Sla::from_u64(0x800), Err(SevTioError::InvalidSla));
        assert!(Sla::NULL.is_null() && !Sla::NULL.is_eol() && Sla::EOL.is_eol());
    }

    #[test]
    fn mailbox() {
        assert_eq!(
            cmdresp_request(SEV_CMD_TIO_DEV_CONNECT, true),
            Some(0x00D4_0001)
        );
        assert_eq!(cmdresp_request(0x7FF, false), Some(0x07FF_0000));
        assert_eq!(cmdresp_request(0x800, false), None);
        assert_eq!(
            parse_cmdresp_request(0x00D4_0001),
            Ok(CmdRespRequest {
                command: 0xD4,
                ioc: true
            })
        );
        assert_eq!(
            parse_cmdresp_request(0x80D4_0000),
            Err(SevTioError::Reserved)
        );
        assert_eq!(
            parse_cmdresp_request(0x00D4_0002),
            Err(SevTioError::Reserved)
        );
        let done = cmdresp_response(0x00D4_0001, SEV_RET_SPDM_REQUEST, false);
        assert_eq!(done, 0x80D4_0032);
        assert_eq!(
            parse_cmdresp_response(done),
            Some(CmdRespStatus {
                status: SEV_RET_SPDM_REQUEST,
                recovery: false
            })
        );
        assert_eq!(parse_cmdresp_response(0x00D4_0001), None);
        assert!(
            parse_cmdresp_response(cmdresp_response(0, 0, true))
                .unwrap()
                .recovery
        );
        assert_eq!(cmdbuff_addr_split(0x1_2345_6789), (0x2345_6789, 1));
        assert_eq!(cmdbuff_addr_join(0x2345_6789, 1), 0x1_2345_6789);
        assert_eq!(SEV_MAILBOX_V2.cmdbuff_addr_hi, 0x109E4);
    }

    #[test]
    fn names() {
        assert_eq!(status_name(0x32), "SPDM_REQUEST");
        assert_eq!(status_name(0x3A), "IN_USE");
        assert_eq!(status_name(0x16), "INVALID_PARAM");
        assert_eq!(status_name(0x34), "unknown SEV status");
        assert_eq!(command_name(0xE3), "TIO_TDI_INFO");
        assert_eq!(command_name(0xD9), "unknown SEV command");
        let mut codes: [u16; 55] = [0; 55];
        for (d, (c, _)) in codes.iter_mut().zip(SEV_STATUS_CODES.iter()) {
            *d = *c;
        }
        for w in codes.windows(2) {
            assert!(w[0] < w[1], "status table sorted and unique");
        }
        assert_eq!(
            SevTioError::EolSla.as_str(),
            "end-of-list SLA where a buffer address is required"
        );
    }

    #[test]
    fn spdm_buffers() {
        let mut out = [0xEEu8; 256];
        let n = encode_spdm_buffer(
            4096,
            DataObjectId::Response,
            SpdmDataType::SecuredSpdm,
            &[7; 20],
            &mut out,
        )
        .unwrap();
        // 16 + 20 = 36 rounded up to 64.
        assert_eq!(n, 0x40 + 64);
        assert_eq!(le32(&out, 0), 4096);
        assert_eq!(le32(&out, 4), 64);
        assert_eq!(le32(&out, 0x40), DOBJ_ID_RESP);
        assert_eq!(le32(&out, 0x44), 64);
        assert_eq!((out[0x48], out[0x49], out[0x4A]), (0, 1, 2));
        let b = parse_spdm_buffer(&out[..n]).unwrap();
        assert_eq!(b.body.len(), 48);
        assert_eq!(&b.body[..20], &[7; 20]);
        assert!(b.body[20..].iter().all(|&x| x == 0));
        assert_eq!(resp_object_len(20), Some(64));
        assert_eq!(resp_object_len(16), Some(32));
        assert_eq!(max_message_len(4096), Some(4096 - 0x50));

        let n = encode_spdm_buffer(
            4096,
            DataObjectId::Request,
            SpdmDataType::Spdm,
            &[1, 2, 3],
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 0x40 + 32);
        let b = parse_spdm_buffer(&out[..n]).unwrap();
        assert_eq!(b.object.length, 19);
        assert_eq!(b.body, &[1, 2, 3]);
        assert_eq!(
            encode_spdm_buffer(
                0x40 + 16,
                DataObjectId::Request,
                SpdmDataType::Spdm,
                &[1],
                &mut out
            ),
            Err(SevTioError::CapacityExceeded)
        );
        // payload_sz not a multiple of 32 (Linux's freshly initialised RESP buffer says 16).
        let mut h = [0u8; 0x40];
        h[0..4].copy_from_slice(&4096u32.to_le_bytes());
        h[4..8].copy_from_slice(&16u32.to_le_bytes());
        assert_eq!(BufferHeader::parse(&h), Err(SevTioError::Misaligned));
        h[4..8].copy_from_slice(&(4096u32 - 0x20).to_le_bytes());
        assert_eq!(BufferHeader::parse(&h), Err(SevTioError::CapacityExceeded));
        h[4..8].copy_from_slice(&(4096u32 - 0x40).to_le_bytes());
        assert!(BufferHeader::parse(&h).is_ok());
        h[8] = 2;
        assert_eq!(BufferHeader::parse(&h), Err(SevTioError::Reserved));
    }

    #[test]
    fn scatter_and_status_pages() {
        let mut page = [0u8; 64];
        let n = encode_scatter_list(&[sla(5), sla(6)], &mut page).unwrap();
        assert_eq!(n, 24);
        let l = parse_scatter_list(&page).unwrap();
        assert_eq!(l.len(), 2);
        let mut it = l.iter();
        assert_eq!(
            (it.next(), it.next(), it.next()),
            (Some(sla(5)), Some(sla(6)), None)
        );
        assert_eq!(
            parse_scatter_list(&page[..16]),
            Err(SevTioError::InvalidScatterList)
        );
        assert_eq!(
            encode_scatter_list(&[Sla::scatter_4k(1).unwrap()], &mut page),
            Err(SevTioError::InvalidScatterList)
        );

        let st = TioStatusPage {
            tio_en: true,
            spdm_req_size_max: 0x2000,
            devctx_size: 0x3000,
            tio_crypto_alg: 5,
            ..Default::default()
        };
        let mut buf = [0u8; 80];
        assert_eq!(st.encode(&mut buf), Ok(64));
        assert_eq!(TioStatusPage::parse(&buf), Ok(st));
        assert_eq!(le32(&buf, 0x28), 0x3000);
        // A 48-byte structure (no crypto algorithms) is accepted, as Linux does.
        buf[0] = 48;
        assert_eq!(
            TioStatusPage::parse(&buf[..48]).map(|p| p.tio_crypto_alg),
            Ok(0)
        );
        buf[0] = 47;
        assert_eq!(TioStatusPage::parse(&buf), Err(SevTioError::InvalidLength));
        buf[0] = 64;
        buf[4] = 4;
        assert_eq!(TioStatusPage::parse(&buf), Err(SevTioError::Reserved));

        let t = TdiStatusPage {
            state: TdiState::Run,
        };
        assert_eq!(t.encode(&mut buf), Ok(16));
        assert_eq!(TdiStatusPage::parse(&buf[..16]), Ok(t));
        buf[4] = 4;
        assert_eq!(
            TdiStatusPage::parse(&buf[..16]),
            Err(SevTioError::InvalidField)
        );
    }
}
