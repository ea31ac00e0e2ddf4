//! Host buffers named by SLAs, reached only through [`Platform`] DMA: a data SLA is one page
//! (4 KiB or 2 MiB), a scatter SLA a page of 4 KiB data page SLAs ended by EOL. A buffer is
//! the concatenation of its pages (its "contiguous view").

use coco_sevtio::{parse_scatter_list, Sla, SlaPageSize, SlaPageType};

use crate::wire::{Fatal, Platform};

/// Why a buffer cannot be used; `status` is the SEV status the command completes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufError {
    /// The SEV status.
    pub status: u16,
    /// The reason, for the log.
    pub reason: String,
}

/// A failure reaching host memory: a status for the command, or a broken socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemError {
    /// The command fails with this status.
    Buf(BufError),
    /// The connection is unusable.
    Fatal(Fatal),
}

impl From<Fatal> for MemError {
    fn from(f: Fatal) -> Self {
        MemError::Fatal(f)
    }
}

impl From<BufError> for MemError {
    fn from(b: BufError) -> Self {
        MemError::Buf(b)
    }
}

/// A failure with a status and a reason.
pub fn buf_err(status: u16, reason: impl Into<String>) -> MemError {
    MemError::Buf(BufError {
        status,
        reason: reason.into(),
    })
}

const PAGE: usize = 0x1000;

/// The pages of a buffer, in order, as (physical address, size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pages: Vec<(u64, usize)>,
}

/// Reads `len` bytes at `addr`; a refused read is INVALID_ADDRESS.
pub fn read(plat: &mut dyn Platform, addr: u64, len: usize) -> Result<Vec<u8>, MemError> {
    match plat.dma_read(addr, len)? {
        Some(d) => Ok(d),
        None => Err(buf_err(
            coco_sevtio::SEV_RET_INVALID_ADDRESS,
            format!("DMA read of {len} bytes at {addr:#x} refused"),
        )),
    }
}

/// Writes `data` at `addr`; a refused write is INVALID_ADDRESS.
pub fn write(plat: &mut dyn Platform, addr: u64, data: &[u8]) -> Result<(), MemError> {
    if plat.dma_write(addr, data)? {
        Ok(())
    } else {
        Err(buf_err(
            coco_sevtio::SEV_RET_INVALID_ADDRESS,
            format!("DMA write of {} bytes at {addr:#x} refused", data.len()),
        ))
    }
}

impl Region {
    /// The pages of the buffer `sla` (a scatter list is read through `plat`), at most `max`
    /// bytes of them. NULL and malformed lists are INVALID_PARAM.
    pub fn of(plat: &mut dyn Platform, sla: Sla, max: usize) -> Result<Region, MemError> {
        if sla.is_null() || sla.is_eol() {
            return Err(buf_err(
                coco_sevtio::SEV_RET_INVALID_PARAM,
                "NULL buffer SLA where a buffer is required",
            ));
        }
        let mut pages = Vec::new();
        match (sla.page_type(), sla.page_size()) {
            (SlaPageType::Data, size) => {
                let bytes = usize::try_from(size.bytes()).unwrap_or(PAGE).min(max);
                pages.push((sla.address(), bytes));
            }
            (SlaPageType::Scatter, SlaPageSize::Size4K) => {
                let list = read(plat, sla.address(), PAGE)?;
                let list = parse_scatter_list(&list).map_err(|e| {
                    buf_err(
                        coco_sevtio::SEV_RET_INVALID_PARAM,
                        format!("scatter list at {:#x}: {e}", sla.address()),
                    )
                })?;
                let mut total: usize = 0;
                for e in list.iter() {
                    if total >= max {
                        break;
                    }
                    pages.push((e.address(), PAGE.min(max.saturating_sub(total))));
                    total = total.saturating_add(PAGE);
                }
            }
            (SlaPageType::Scatter, SlaPageSize::Size2M) => {
                return Err(buf_err(
                    coco_sevtio::SEV_RET_INVALID_PARAM,
                    "2 MiB scatter list SLA",
                ))
            }
        }
        Ok(Region { pages })
    }

    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.pages
            .iter()
            .fold(0usize, |n, (_, l)| n.saturating_add(*l))
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address of the first byte.
    pub fn start(&self) -> u64 {
        self.pages.first().map_or(0, |(a, _)| *a)
    }

    /// Reads `len` bytes from offset 0.
    pub fn read(&self, plat: &mut dyn Platform, len: usize) -> Result<Vec<u8>, MemError> {
        if len > self.len() {
            return Err(buf_err(
                coco_sevtio::SEV_RET_INVALID_LEN,
                format!("{len} bytes do not fit a {}-byte buffer", self.len()),
            ));
        }
        let mut out = Vec::with_capacity(len);
        for &(addr, size) in &self.pages {
            let want = size.min(len.saturating_sub(out.len()));
            if want == 0 {
                break;
            }
            out.extend_from_slice(&read(plat, addr, want)?);
        }
        Ok(out)
    }

    /// Writes `data` from offset 0.
    pub fn write(&self, plat: &mut dyn Platform, data: &[u8]) -> Result<(), MemError> {
        if data.len() > self.len() {
            return Err(buf_err(
                coco_sevtio::SEV_RET_INVALID_LEN,
                format!(
                    "{} bytes do not fit a {}-byte buffer",
                    data.len(),
                    self.len()
                ),
            ));
        }
        let mut rest = data;
        for &(addr, size) in &self.pages {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(size.min(rest.len()));
            write(plat, addr, now)?;
            rest = later;
        }
        Ok(())
    }
}
