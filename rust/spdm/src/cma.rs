//! The CMA identity of a device certificate (PCIe r6.1 sec 6.31.3).
//!
//! A CMA leaf certificate names the function it belongs to in its subjectAltName extension, as
//! an `otherName` whose type-id is 2.23.147 and whose value is a UTF8String such as
//! `Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100` (hexadecimal fields
//! separated by colons; Vendor and Device always present).
//!
//! [`find_identity`] walks the DER of a certificate down to that value without allocating;
//! [`Identity::parse`] reads the fields and [`Identity::check`] compares them with the IDs the
//! function reports in its config space. The kernel's X.509 parser does not keep the
//! subjectAltName, hence this small walker: it only follows definite-length TLVs and refuses
//! anything it does not understand.

/// The DER encoding of OID 2.23.147 (the CMA otherName type-id) without tag and length.
pub const CMA_OTHER_NAME_OID: [u8; 3] = [0x67, 0x81, 0x13];

/// The DER encoding of OID 2.5.29.17 (subjectAltName) without tag and length.
pub const SUBJECT_ALT_NAME_OID: [u8; 3] = [0x55, 0x1d, 0x11];

/// Longest identity string accepted (the six fields need 61 characters).
pub const MAX_IDENTITY_LEN: usize = 255;

pub(crate) const TAG_BOOLEAN: u8 = 0x01;
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_OCTET_STRING: u8 = 0x04;
pub(crate) const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
/// `[0]` constructed: the explicit version of a TBSCertificate, an otherName (IMPLICIT), and
/// the explicit value inside an otherName.
const TAG_CTX0: u8 = 0xa0;
/// `[1]` and `[2]` IMPLICIT: issuerUniqueID, subjectUniqueID (primitive or constructed).
const TAG_CTX1_PRIM: u8 = 0x81;
const TAG_CTX1_CONS: u8 = 0xa1;
const TAG_CTX2_PRIM: u8 = 0x82;
const TAG_CTX2_CONS: u8 = 0xa2;
/// `[3]` constructed: the explicit extensions of a TBSCertificate.
const TAG_CTX3: u8 = 0xa3;

/// Why a certificate's CMA identity could not be read, or does not fit the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmaError {
    /// The certificate is not well-formed DER where the walker looked.
    BadDer,
    /// The certificate has more than one subjectAltName extension, or more than one CMA
    /// otherName.
    Duplicate,
    /// The CMA otherName value is not a UTF8String, or is too long.
    BadValue,
    /// The identity string is malformed: unknown or repeated field, a value that is not
    /// hexadecimal of the right width, or Vendor/Device missing.
    BadIdentity,
    /// The identity names another vendor.
    VendorMismatch,
    /// The identity names another device ID.
    DeviceMismatch,
    /// The identity names another class code.
    ClassMismatch,
    /// The identity names another revision.
    RevisionMismatch,
    /// The identity names another subsystem vendor.
    SubsystemVendorMismatch,
    /// The identity names another subsystem ID.
    SubsystemMismatch,
}

impl CmaError {
    /// A short description, for logs and sysfs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadDer => "malformed DER in the leaf certificate",
            Self::Duplicate => "leaf certificate has more than one CMA identity",
            Self::BadValue => "CMA identity is not a UTF8String of acceptable length",
            Self::BadIdentity => "CMA identity string is malformed",
            Self::VendorMismatch => "CMA identity names another vendor ID",
            Self::DeviceMismatch => "CMA identity names another device ID",
            Self::ClassMismatch => "CMA identity names another class code",
            Self::RevisionMismatch => "CMA identity names another revision ID",
            Self::SubsystemVendorMismatch => "CMA identity names another subsystem vendor ID",
            Self::SubsystemMismatch => "CMA identity names another subsystem ID",
        }
    }
}

/// One DER TLV: its tag, its contents, and what follows it.
pub(crate) struct Tlv<'a> {
    pub(crate) tag: u8,
    pub(crate) value: &'a [u8],
    pub(crate) rest: &'a [u8],
}

/// `s` split after `n` bytes, if it has that many (`split_at_checked` is newer than the
/// kernel's minimum Rust).
fn split(s: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    Some((s.get(..n)?, s.get(n..)?))
}

/// Reads one definite-length TLV with a single-byte tag.
pub(crate) fn tlv(input: &[u8]) -> Result<Tlv<'_>, CmaError> {
    let (&tag, after_tag) = input.split_first().ok_or(CmaError::BadDer)?;
    if tag & 0x1f == 0x1f {
        // High tag numbers do not occur where this walker looks.
        return Err(CmaError::BadDer);
    }
    let (&first, mut after_len) = after_tag.split_first().ok_or(CmaError::BadDer)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            // Indefinite length (BER), or longer than any certificate.
            return Err(CmaError::BadDer);
        }
        let (bytes, rest) = split(after_len, n).ok_or(CmaError::BadDer)?;
        after_len = rest;
        let mut len = 0usize;
        for &b in bytes {
            len = len
                .checked_mul(256)
                .and_then(|l| l.checked_add(usize::from(b)))
                .ok_or(CmaError::BadDer)?;
        }
        len
    };
    let (value, rest) = split(after_len, len).ok_or(CmaError::BadDer)?;
    Ok(Tlv { tag, value, rest })
}

/// Reads one TLV that must carry `tag`.
pub(crate) fn expect(input: &[u8], tag: u8) -> Result<Tlv<'_>, CmaError> {
    let t = tlv(input)?;
    if t.tag == tag {
        Ok(t)
    } else {
        Err(CmaError::BadDer)
    }
}

/// The contents of the `[3]` extensions field of the DER certificate `cert` (the
/// `Extensions` SEQUENCE, tag and length included), if it has one.
fn extensions_field(cert: &[u8]) -> Result<Option<&[u8]>, CmaError> {
    let certificate = expect(cert, TAG_SEQUENCE)?;
    let tbs = expect(certificate.value, TAG_SEQUENCE)?;
    let mut t = tbs.value;
    // version [0] EXPLICIT, optional
    let first = tlv(t)?;
    if first.tag == TAG_CTX0 {
        t = first.rest;
    }
    // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    for _ in 0..6 {
        t = tlv(t)?.rest;
    }
    let mut extensions = None;
    while !t.is_empty() {
        let f = tlv(t)?;
        match f.tag {
            TAG_CTX1_PRIM | TAG_CTX1_CONS | TAG_CTX2_PRIM | TAG_CTX2_CONS => {}
            TAG_CTX3 if extensions.is_none() => extensions = Some(f.value),
            _ => return Err(CmaError::BadDer),
        }
        t = f.rest;
    }
    Ok(extensions)
}

/// One extension of a certificate: its OID and extnValue (contents).
pub(crate) struct Extension<'a> {
    pub(crate) oid: &'a [u8],
    pub(crate) value: &'a [u8],
}

/// Calls `f` for every extension of the DER certificate `cert`, in order; stops at the first
/// error (malformed DER, or one returned by `f`).
pub(crate) fn for_each_extension<'a>(
    cert: &'a [u8],
    mut f: impl FnMut(Extension<'a>) -> Result<(), CmaError>,
) -> Result<(), CmaError> {
    let Some(ext) = extensions_field(cert)? else {
        return Ok(());
    };
    let list = expect(ext, TAG_SEQUENCE)?;
    if !list.rest.is_empty() {
        return Err(CmaError::BadDer);
    }
    let mut e = list.value;
    while !e.is_empty() {
        let extension = expect(e, TAG_SEQUENCE)?;
        e = extension.rest;
        let oid = expect(extension.value, TAG_OID)?;
        let mut v = tlv(oid.rest)?;
        if v.tag == TAG_BOOLEAN {
            v = tlv(v.rest)?;
        }
        if v.tag != TAG_OCTET_STRING || !v.rest.is_empty() {
            return Err(CmaError::BadDer);
        }
        f(Extension {
            oid: oid.value,
            value: v.value,
        })?;
    }
    Ok(())
}

/// The contents of the subjectAltName extension of `cert` (GeneralNames), if it has one.
fn subject_alt_name(cert: &[u8]) -> Result<Option<&[u8]>, CmaError> {
    let mut found = None;
    for_each_extension(cert, |e| {
        if e.oid == SUBJECT_ALT_NAME_OID {
            if found.is_some() {
                return Err(CmaError::Duplicate);
            }
            found = Some(e.value);
        }
        Ok(())
    })?;
    Ok(found)
}

/// Finds the CMA identity in the DER certificate `cert`: the UTF8String of its subjectAltName
/// otherName with type-id 2.23.147. `Ok(None)` if the certificate has none.
pub fn find_identity(cert: &[u8]) -> Result<Option<&[u8]>, CmaError> {
    let Some(san) = subject_alt_name(cert)? else {
        return Ok(None);
    };
    let names = expect(san, TAG_SEQUENCE)?;
    if !names.rest.is_empty() {
        return Err(CmaError::BadDer);
    }
    let mut found = None;
    let mut n = names.value;
    while !n.is_empty() {
        let name = tlv(n)?;
        n = name.rest;
        if name.tag != TAG_CTX0 {
            // Another kind of GeneralName (dNSName, URI, directoryName, ...).
            continue;
        }
        // otherName: type-id OID, value [0] EXPLICIT ANY
        let type_id = expect(name.value, TAG_OID)?;
        let value = expect(type_id.rest, TAG_CTX0)?;
        if !value.rest.is_empty() {
            return Err(CmaError::BadDer);
        }
        if type_id.value != CMA_OTHER_NAME_OID {
            continue;
        }
        let s = tlv(value.value).map_err(|_| CmaError::BadValue)?;
        if s.tag != TAG_UTF8_STRING || !s.rest.is_empty() || s.value.len() > MAX_IDENTITY_LEN {
            return Err(CmaError::BadValue);
        }
        if found.is_some() {
            return Err(CmaError::Duplicate);
        }
        found = Some(s.value);
    }
    Ok(found)
}

/// The IDs of a PCI function, as its config space reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FunctionIds {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (base class, subclass, programming interface).
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// Subsystem vendor ID.
    pub subsystem_vendor: u16,
    /// Subsystem ID.
    pub subsystem: u16,
}

/// The fields of a CMA identity string. Vendor and Device are mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Identity {
    /// `Vendor=`.
    pub vendor: u16,
    /// `Device=`.
    pub device: u16,
    /// `CC=`, if present.
    pub class: Option<u32>,
    /// `REV=`, if present.
    pub revision: Option<u8>,
    /// `SSVID=`, if present.
    pub subsystem_vendor: Option<u16>,
    /// `SSID=`, if present.
    pub subsystem: Option<u16>,
}

/// Parses exactly `digits` hexadecimal digits.
fn hex(s: &[u8], digits: usize) -> Result<u32, CmaError> {
    if s.len() != digits || digits > 8 {
        return Err(CmaError::BadIdentity);
    }
    let mut v = 0u32;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c.wrapping_sub(b'0'),
            b'a'..=b'f' => c.wrapping_sub(b'a').wrapping_add(10),
            b'A'..=b'F' => c.wrapping_sub(b'A').wrapping_add(10),
            _ => return Err(CmaError::BadIdentity),
        };
        v = v
            .checked_mul(16)
            .and_then(|v| v.checked_add(u32::from(d)))
            .ok_or(CmaError::BadIdentity)?;
    }
    Ok(v)
}

fn hex16(s: &[u8]) -> Result<u16, CmaError> {
    u16::try_from(hex(s, 4)?).map_err(|_| CmaError::BadIdentity)
}

/// Stores `v` in `slot`, refusing a repeated field.
fn set<T>(slot: &mut Option<T>, v: T) -> Result<(), CmaError> {
    if slot.is_some() {
        return Err(CmaError::BadIdentity);
    }
    *slot = Some(v);
    Ok(())
}

impl Identity {
    /// Parses `Vendor=vvvv:Device=dddd[:CC=cccccc][:REV=rr][:SSVID=ssss][:SSID=ssss]` (fields in
    /// any order, each at most once, hexadecimal of exactly the width shown).
    pub fn parse(s: &[u8]) -> Result<Self, CmaError> {
        let mut vendor = None;
        let mut device = None;
        let mut id = Identity::default();
        for field in s.split(|&c| c == b':') {
            let eq = field
                .iter()
                .position(|&c| c == b'=')
                .ok_or(CmaError::BadIdentity)?;
            let (name, value) = split(field, eq).ok_or(CmaError::BadIdentity)?;
            let value = value.get(1..).ok_or(CmaError::BadIdentity)?;
            match name {
                b"Vendor" => set(&mut vendor, hex16(value)?)?,
                b"Device" => set(&mut device, hex16(value)?)?,
                b"CC" => set(&mut id.class, hex(value, 6)?)?,
                b"REV" => set(
                    &mut id.revision,
                    u8::try_from(hex(value, 2)?).map_err(|_| CmaError::BadIdentity)?,
                )?,
                b"SSVID" => set(&mut id.subsystem_vendor, hex16(value)?)?,
                b"SSID" => set(&mut id.subsystem, hex16(value)?)?,
                _ => return Err(CmaError::BadIdentity),
            }
        }
        id.vendor = vendor.ok_or(CmaError::BadIdentity)?;
        id.device = device.ok_or(CmaError::BadIdentity)?;
        Ok(id)
    }

    /// Checks the identity against the function's IDs: every field present must match.
    pub fn check(&self, ids: &FunctionIds) -> Result<(), CmaError> {
        if self.vendor != ids.vendor {
            return Err(CmaError::VendorMismatch);
        }
        if self.device != ids.device {
            return Err(CmaError::DeviceMismatch);
        }
        if self.class.is_some_and(|c| c != ids.class) {
            return Err(CmaError::ClassMismatch);
        }
        if self.revision.is_some_and(|r| r != ids.revision) {
            return Err(CmaError::RevisionMismatch);
        }
        if self
            .subsystem_vendor
            .is_some_and(|v| v != ids.subsystem_vendor)
        {
            return Err(CmaError::SubsystemVendorMismatch);
        }
        if self.subsystem.is_some_and(|v| v != ids.subsystem) {
            return Err(CmaError::SubsystemMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a DER TLV (lengths up to 65535).
    fn push_tlv(out: &mut [u8; 2048], len: &mut usize, tag: u8, value: &[u8]) {
        let mut hdr = [0u8; 4];
        let h = if value.len() < 0x80 {
            hdr[0] = tag;
            hdr[1] = value.len() as u8;
            2
        } else if value.len() < 0x100 {
            hdr[0] = tag;
            hdr[1] = 0x81;
            hdr[2] = value.len() as u8;
            3
        } else {
            hdr[0] = tag;
            hdr[1] = 0x82;
            hdr[2] = (value.len() >> 8) as u8;
            hdr[3] = value.len() as u8;
            4
        };
        out[*len..*len + h].copy_from_slice(&hdr[..h]);
        *len += h;
        out[*len..*len + value.len()].copy_from_slice(value);
        *len += value.len();
    }

    struct Der {
        buf: [u8; 2048],
        len: usize,
    }

    impl Der {
        fn new() -> Self {
            Self {
                buf: [0; 2048],
                len: 0,
            }
        }
        fn tlv(mut self, tag: u8, value: &[u8]) -> Self {
            push_tlv(&mut self.buf, &mut self.len, tag, value);
            self
        }
        fn bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }

    fn other_name(oid: &[u8], value_tag: u8, value: &[u8]) -> Der {
        let v = Der::new().tlv(value_tag, value);
        let inner = Der::new().tlv(TAG_OID, oid).tlv(TAG_CTX0, v.bytes());
        Der::new().tlv(TAG_CTX0, inner.bytes())
    }

    /// A certificate skeleton: the walker only looks at the structure, not the contents.
    fn cert_with_extensions(exts: &[u8]) -> Der {
        let version = Der::new().tlv(TAG_CTX0, &[0x02, 0x01, 0x02]);
        let mut tbs_body = Der::new();
        tbs_body = tbs_body.tlv(TAG_CTX0, &version.bytes()[2..]);
        tbs_body = tbs_body
            .tlv(0x02, &[0x01])
            .tlv(TAG_SEQUENCE, &[0x06, 0x01, 0x2a])
            .tlv(TAG_SEQUENCE, &[])
            .tlv(TAG_SEQUENCE, &[])
            .tlv(TAG_SEQUENCE, &[])
            .tlv(TAG_SEQUENCE, &[]);
        let ext_list = Der::new().tlv(TAG_SEQUENCE, exts);
        tbs_body = tbs_body.tlv(TAG_CTX3, ext_list.bytes());
        let tbs = Der::new().tlv(TAG_SEQUENCE, tbs_body.bytes());
        let mut cert_body = Der::new();
        cert_body.buf[..tbs.len].copy_from_slice(tbs.bytes());
        cert_body.len = tbs.len;
        cert_body = cert_body
            .tlv(TAG_SEQUENCE, &[0x06, 0x01, 0x2a])
            .tlv(0x03, &[0x00]);
        Der::new().tlv(TAG_SEQUENCE, cert_body.bytes())
    }

    fn san_extension(names: &[u8], critical: bool) -> Der {
        let gn = Der::new().tlv(TAG_SEQUENCE, names);
        let mut body = Der::new().tlv(TAG_OID, &SUBJECT_ALT_NAME_OID);
        if critical {
            body = body.tlv(TAG_BOOLEAN, &[0xff]);
        }
        body = body.tlv(TAG_OCTET_STRING, gn.bytes());
        Der::new().tlv(TAG_SEQUENCE, body.bytes())
    }

    const ID: &[u8] = b"Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100";

    #[test]
    fn finds_the_identity_among_other_names() {
        let dns = Der::new().tlv(0x82, b"device.example");
        let other = other_name(&[0x2a, 0x03], TAG_UTF8_STRING, b"not ours");
        let cma = other_name(&CMA_OTHER_NAME_OID, TAG_UTF8_STRING, ID);
        let mut names = Der::new();
        for part in [dns.bytes(), other.bytes(), cma.bytes()] {
            names.buf[names.len..names.len + part.len()].copy_from_slice(part);
            names.len += part.len();
        }
        for critical in [false, true] {
            let ext = san_extension(names.bytes(), critical);
            let cert = cert_with_extensions(ext.bytes());
            assert_eq!(find_identity(cert.bytes()), Ok(Some(ID)));
        }
    }

    #[test]
    fn no_san_or_no_cma_name() {
        let basic = Der::new().tlv(
            TAG_SEQUENCE,
            Der::new()
                .tlv(TAG_OID, &[0x55, 0x1d, 0x13])
                .tlv(TAG_OCTET_STRING, &[0x30, 0x00])
                .bytes(),
        );
        let cert = cert_with_extensions(basic.bytes());
        assert_eq!(find_identity(cert.bytes()), Ok(None));
        let dns = Der::new().tlv(0x82, b"x");
        let cert = cert_with_extensions(san_extension(dns.bytes(), false).bytes());
        assert_eq!(find_identity(cert.bytes()), Ok(None));
    }

    #[test]
    fn refuses_bad_values_and_duplicates() {
        let wrong_type = other_name(&CMA_OTHER_NAME_OID, 0x13, ID);
        let cert = cert_with_extensions(san_extension(wrong_type.bytes(), false).bytes());
        assert_eq!(find_identity(cert.bytes()), Err(CmaError::BadValue));

        let cma = other_name(&CMA_OTHER_NAME_OID, TAG_UTF8_STRING, ID);
        let mut two = Der::new();
        for _ in 0..2 {
            two.buf[two.len..two.len + cma.len].copy_from_slice(cma.bytes());
            two.len += cma.len;
        }
        let cert = cert_with_extensions(san_extension(two.bytes(), false).bytes());
        assert_eq!(find_identity(cert.bytes()), Err(CmaError::Duplicate));

        let ext = san_extension(cma.bytes(), false);
        let mut exts = Der::new();
        for _ in 0..2 {
            exts.buf[exts.len..exts.len + ext.len].copy_from_slice(ext.bytes());
            exts.len += ext.len;
        }
        let cert = cert_with_extensions(exts.bytes());
        assert_eq!(find_identity(cert.bytes()), Err(CmaError::Duplicate));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let cma = other_name(&CMA_OTHER_NAME_OID, TAG_UTF8_STRING, ID);
        let cert = cert_with_extensions(san_extension(cma.bytes(), false).bytes());
        let full = cert.bytes();
        for n in 0..full.len() {
            assert!(find_identity(&full[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn parses_and_checks_identity() {
        let id = Identity::parse(ID).unwrap();
        let ids = FunctionIds {
            vendor: 0x1b36,
            device: 0x0010,
            class: 0x010802,
            revision: 2,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        };
        assert_eq!(id.check(&ids), Ok(()));
        assert_eq!(
            id.check(&FunctionIds {
                device: 0x11,
                ..ids
            }),
            Err(CmaError::DeviceMismatch)
        );
        assert_eq!(
            id.check(&FunctionIds {
                vendor: 0x8086,
                ..ids
            }),
            Err(CmaError::VendorMismatch)
        );
        assert_eq!(
            id.check(&FunctionIds { revision: 3, ..ids }),
            Err(CmaError::RevisionMismatch)
        );
        assert_eq!(
            id.check(&FunctionIds { class: 0, ..ids }),
            Err(CmaError::ClassMismatch)
        );
        assert_eq!(
            id.check(&FunctionIds {
                subsystem: 0,
                ..ids
            }),
            Err(CmaError::SubsystemMismatch)
        );
        assert_eq!(
            id.check(&FunctionIds {
                subsystem_vendor: 0,
                ..ids
            }),
            Err(CmaError::SubsystemVendorMismatch)
        );
        // Optional fields may be absent; the order does not matter.
        let short = Identity::parse(b"Device=0010:Vendor=1B36").unwrap();
        assert_eq!(short.check(&ids), Ok(()));
        assert_eq!(short.class, None);
    }

    #[test]
    fn refuses_malformed_identities() {
        for bad in [
            &b""[..],
            b"Vendor=1b36",
            b"Device=0010",
            b"Vendor=1b36:Device=0010:",
            b"Vendor=1b36:Device=010",
            b"Vendor=1b36:Device=00100",
            b"Vendor=1b36:Device=001g",
            b"Vendor=1b36:Device=0010:Vendor=1b36",
            b"Vendor=1b36:Device=0010:CC=0108",
            b"Vendor=1b36:Device=0010:Foo=01",
            b"Vendor1b36:Device=0010",
            b"Vendor=+b36:Device=0010",
        ] {
            assert_eq!(
                Identity::parse(bad),
                Err(CmaError::BadIdentity),
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }
}
