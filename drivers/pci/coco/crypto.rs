// SPDX-License-Identifier: GPL-2.0

//! Kernel crypto glue for SPDM authentication.
//!
//! Safe wrappers over the kernel's crypto API and X.509 parser, built only on the generated
//! bindings and on the C helpers for static inlines that the kernel overlay adds
//! (`rust/kernel-overlay/0003-rust-helpers-add-crypto-helpers.patch`, `rust/helpers/crypto.c`):
//!
//! - [`Hash`], [`digest`]: SHA-256/384/512 over `crypto_shash`. [`Hash`] is also the
//!   [`TranscriptSink`] the SPDM requester feeds the transcript into.
//! - [`Verifier`], [`verify`], [`verify_with_cert_key`]: signature verification over
//!   `crypto_sig`.
//! - [`X509Cert`]: a certificate parsed by the kernel's X.509 parser (`x509_cert_parse()`).
//!
//! # Algorithms and formats
//!
//! | [`SigAlg`]           | `crypto_sig` name          | signature                       |
//! |----------------------|----------------------------|---------------------------------|
//! | `EcdsaP256`          | `p1363(ecdsa-nist-p256)`   | raw `r \|\| s`, 2 × 32 bytes    |
//! | `EcdsaP384`          | `p1363(ecdsa-nist-p384)`   | raw `r \|\| s`, 2 × 48 bytes    |
//! | `EcdsaP521`          | `p1363(ecdsa-nist-p521)`   | raw `r \|\| s`, 2 × 66 bytes    |
//! | `RsaPkcs1(shaNNN)`   | `pkcs1(rsa,shaNNN)`        | RSASSA-PKCS1-v1_5, modulus size |
//!
//! SPDM sends ECDSA signatures as `r || s` (big-endian, each the size of the curve order), which
//! is IEEE P1363 encoding: `crypto/ecdsa-p1363.c` requires exactly `2 * ceil(bits / 8)` bytes and
//! hands them to `crypto/ecdsa.c`. Both take the message *digest*: ECDSA uses its leftmost bits
//! up to the curve size (so P-256 with SHA-384 works as FIPS 186 specifies); `pkcs1(rsa,H)`
//! requires a digest of exactly H's size and checks the DigestInfo prefix for H.
//! Linux 7.3 has no RSASSA-PSS signature algorithm (no `psspad`/`rsassa-pss` template), so the
//! SPDM RSAPSS algorithms cannot be verified with the kernel's crypto.
//!
//! Public keys, as `crypto_sig_set_pubkey()` expects them:
//!
//! - ECDSA: the SEC 1 uncompressed point `0x04 || X || Y` (`ecdsa_set_pub_key()` rejects
//!   anything else, and checks that the point is on the curve). [`Verifier::new`] also accepts
//!   the bare `X || Y`, as SPDM 1.3 raw public keys are.
//! - RSA: the DER `RSAPublicKey` (RFC 8017 A.1.1, `SEQUENCE { modulus, publicExponent }`,
//!   `crypto/rsapubkey.asn1`).
//!
//! Both are exactly the contents of an X.509 certificate's `subjectPublicKey` BIT STRING, which is
//! what `x509_cert_parse()` keeps in `public_key.key` (without the unused-bits octet), with
//! `public_key.pkey_algo` `"ecdsa-nist-p256"`, `"ecdsa-nist-p384"`, `"ecdsa-nist-p521"` or
//! `"rsa"`. So [`X509Cert::public_key`] can be handed to [`Verifier::new`] unchanged, with the
//! algorithm from [`X509Cert::sig_alg`].
//!
//! Everything here may sleep: call it from process context.

use crate::auth::TranscriptSink;
use core::ptr::NonNull;
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    prelude::*,
    str::CStrExt,
};

/// Largest digest any supported hash produces.
pub(crate) const MAX_DIGEST_SIZE: usize = bindings::HASH_MAX_DIGESTSIZE as usize;

/// Largest ECDSA scalar (P-521: 66 bytes).
const MAX_EC_SCALAR_SIZE: usize = 66;

/// The data given to one `crypto_shash_update()` call at most (its length is an `unsigned int`).
const UPDATE_CHUNK: usize = 1 << 30;

/// A hash algorithm of SPDM's BaseHashAlgo set that the kernel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    /// SHA-256 (`sha256`).
    Sha256,
    /// SHA-384 (`sha384`).
    Sha384,
    /// SHA-512 (`sha512`).
    Sha512,
}

impl HashAlg {
    /// Size of the digest in bytes.
    pub(crate) const fn digest_size(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The crypto API's name of the algorithm.
    const fn name(self) -> &'static CStr {
        match self {
            Self::Sha256 => c"sha256",
            Self::Sha384 => c"sha384",
            Self::Sha512 => c"sha512",
        }
    }
}

/// An owned `crypto_shash` transform.
///
/// # Invariants
///
/// The pointer was returned by a successful `crypto_alloc_shash()` and is freed only on drop.
struct ShashTfm(NonNull<bindings::crypto_shash>);

impl ShashTfm {
    fn new(alg: HashAlg) -> Result<Self> {
        // SAFETY: The name is a NUL-terminated string; the function has no other requirement.
        let tfm =
            from_err_ptr(unsafe { bindings::crypto_alloc_shash(alg.name().as_char_ptr(), 0, 0) })?;
        // INVARIANT: A pointer that is not an error pointer is a live transform.
        NonNull::new(tfm).map(Self).ok_or(ENOMEM)
    }
}

impl Drop for ShashTfm {
    fn drop(&mut self) {
        // SAFETY: The transform is live and owned by `self` (type invariant); nothing uses it
        // after this.
        unsafe { bindings::crypto_free_shash(self.0.as_ptr()) };
    }
}

/// A running hash computation: `crypto_shash` with its `shash_desc`.
///
/// [`Hash::update`] feeds data, [`Hash::finalize`] writes the digest and starts over, so one
/// `Hash` can compute several digests. As a [`TranscriptSink`], an update error is kept and
/// reported by the next [`Hash::finalize`].
///
/// # Invariants
///
/// `desc` holds a `struct shash_desc` whose `tfm` is `tfm`, followed by the transform's
/// `crypto_shash_descsize()` bytes of state, initialised by `crypto_shash_init()` unless `error`
/// is set. Its `u64`
/// elements (and kmalloc, which aligns to `ARCH_KMALLOC_MINALIGN`) give the context the alignment
/// that `struct shash_desc` requires.
pub(crate) struct Hash {
    desc: KVec<u64>,
    tfm: ShashTfm,
    alg: HashAlg,
    /// The first error since the last [`Hash::finalize`].
    error: Option<Error>,
}

// SAFETY: The transform and the descriptor may be used and freed from any thread; `Hash` is not
// `Sync`, so they are never used from two threads at once.
unsafe impl Send for Hash {}

impl Hash {
    /// Allocates a transform for `alg` and starts a computation.
    pub(crate) fn new(alg: HashAlg) -> Result<Self> {
        let tfm = ShashTfm::new(alg)?;
        // SAFETY: `tfm` is a live transform.
        let digest_size = unsafe { bindings::crypto_shash_digestsize(tfm.0.as_ptr()) };
        if usize::try_from(digest_size) != Ok(alg.digest_size()) {
            return Err(EINVAL);
        }
        // SAFETY: `tfm` is a live transform.
        let ctx_size = unsafe { bindings::crypto_shash_descsize(tfm.0.as_ptr()) };
        let size = usize::try_from(ctx_size)
            .ok()
            .and_then(|n| n.checked_add(size_of::<bindings::shash_desc>()))
            .ok_or(ENOMEM)?;
        let desc = KVec::from_elem(0u64, size.div_ceil(size_of::<u64>()), GFP_KERNEL)?;
        let mut this = Self {
            desc,
            tfm,
            alg,
            error: None,
        };
        this.init()?;
        Ok(this)
    }

    /// The algorithm.
    pub(crate) fn alg(&self) -> HashAlg {
        self.alg
    }

    fn desc_ptr(&mut self) -> *mut bindings::shash_desc {
        self.desc.as_mut_ptr().cast()
    }

    /// (Re)starts the computation.
    fn init(&mut self) -> Result {
        let tfm = self.tfm.0.as_ptr();
        let desc = self.desc_ptr();
        // SAFETY: `desc` points to an aligned buffer, owned by `self`, large enough for a
        // `struct shash_desc` and the transform's state (type invariant).
        unsafe { (*desc).tfm = tfm };
        // SAFETY: `desc` is a descriptor of the live transform `tfm` with room for its state.
        to_result(unsafe { bindings::crypto_shash_init(desc) })
    }

    /// Feeds `data`.
    ///
    /// After an error the state is undefined: [`Hash::finalize`] reports the error and starts
    /// over.
    pub(crate) fn update(&mut self, data: &[u8]) -> Result {
        if let Some(e) = self.error {
            return Err(e);
        }
        for chunk in data.chunks(UPDATE_CHUNK) {
            let len = u32::try_from(chunk.len()).map_err(|_| EINVAL)?;
            // SAFETY: The descriptor is initialised (type invariant, `error` is not set, as
            // checked above and after each chunk); `chunk` is valid for reads of `len` bytes,
            // which is all the call reads.
            let ret = to_result(unsafe {
                bindings::crypto_shash_update(self.desc_ptr(), chunk.as_ptr(), len)
            });
            if let Err(e) = ret {
                self.error = Some(e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes the digest of everything fed since the last call to the start of `out` and returns
    /// its size; then starts a new computation.
    ///
    /// Fails with `EINVAL` if `out` is shorter than the digest (the computation is kept), or with
    /// the error of a failed update.
    pub(crate) fn finalize(&mut self, out: &mut [u8]) -> Result<usize> {
        let size = self.alg.digest_size();
        let out = out.get_mut(..size).ok_or(EINVAL)?;
        let ret = match self.error.take() {
            Some(e) => Err(e),
            // SAFETY: The descriptor is initialised (type invariant, `error` is not set); `out`
            // is valid for writes of the digest size, which is all the call writes.
            None => to_result(unsafe {
                bindings::crypto_shash_final(self.desc_ptr(), out.as_mut_ptr())
            }),
        };
        if let Err(e) = self.init() {
            // Not initialised: updates fail until a `finalize()` restarts successfully.
            self.error = Some(e);
            return Err(e);
        }
        ret.map(|()| size)
    }
}

impl TranscriptSink for Hash {
    fn update(&mut self, bytes: &[u8]) {
        // The error is kept in `self.error` and reported by `finalize()`.
        let _ = Hash::update(self, bytes);
    }
}

impl Drop for Hash {
    fn drop(&mut self) {
        // The state is derived from what was hashed: clear it like `shash_desc_zero()` does.
        for word in self.desc.iter_mut() {
            // SAFETY: `word` is a valid, aligned `u64` of the buffer.
            unsafe { core::ptr::write_volatile(word, 0) };
        }
    }
}

/// Computes the `alg` digest of `data` into the start of `out`; returns its size.
pub(crate) fn digest(alg: HashAlg, data: &[u8], out: &mut [u8]) -> Result<usize> {
    if out.len() < alg.digest_size() {
        return Err(EINVAL);
    }
    let mut hash = Hash::new(alg)?;
    hash.update(data)?;
    hash.finalize(out)
}

/// A signature algorithm that the kernel can verify (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigAlg {
    /// ECDSA on NIST P-256, raw `r || s` signature.
    EcdsaP256,
    /// ECDSA on NIST P-384, raw `r || s` signature.
    EcdsaP384,
    /// ECDSA on NIST P-521, raw `r || s` signature.
    EcdsaP521,
    /// RSASSA-PKCS1-v1_5 with the given hash, any modulus size the kernel accepts.
    RsaPkcs1(HashAlg),
}

impl SigAlg {
    /// The crypto API's name of the algorithm.
    const fn name(self) -> &'static CStr {
        match self {
            Self::EcdsaP256 => c"p1363(ecdsa-nist-p256)",
            Self::EcdsaP384 => c"p1363(ecdsa-nist-p384)",
            Self::EcdsaP521 => c"p1363(ecdsa-nist-p521)",
            Self::RsaPkcs1(HashAlg::Sha256) => c"pkcs1(rsa,sha256)",
            Self::RsaPkcs1(HashAlg::Sha384) => c"pkcs1(rsa,sha384)",
            Self::RsaPkcs1(HashAlg::Sha512) => c"pkcs1(rsa,sha512)",
        }
    }

    /// For ECDSA, the size of a coordinate and of `r` and `s`.
    pub(crate) const fn ec_scalar_size(self) -> Option<usize> {
        match self {
            Self::EcdsaP256 => Some(32),
            Self::EcdsaP384 => Some(48),
            Self::EcdsaP521 => Some(MAX_EC_SCALAR_SIZE),
            Self::RsaPkcs1(_) => None,
        }
    }
}

/// A `crypto_sig` transform with a public key set: verifies signatures made with its private key.
///
/// # Invariants
///
/// `tfm` was returned by a successful `crypto_alloc_sig()`, has had a public key set
/// successfully, and is freed only on drop.
pub(crate) struct Verifier {
    tfm: NonNull<bindings::crypto_sig>,
    alg: SigAlg,
}

// SAFETY: A transform may be used and freed from any thread; `Verifier` is not `Sync`.
unsafe impl Send for Verifier {}

impl Verifier {
    /// Allocates a transform for `alg` and sets `public_key` (see the module documentation for
    /// the encodings).
    ///
    /// Fails with `EINVAL` (or `EKEYREJECTED`) if the kernel refuses the key, e.g. a point not on
    /// the curve or a key of another curve, and with `ENOENT` if the algorithm is not available.
    pub(crate) fn new(alg: SigAlg, public_key: &[u8]) -> Result<Self> {
        let mut point = [0u8; 1 + 2 * MAX_EC_SCALAR_SIZE];
        let key = match alg.ec_scalar_size() {
            Some(n) if public_key.len() == 2 * n => {
                // Bare `X || Y`: make it an uncompressed point.
                let (tag, xy) = point.split_first_mut().ok_or(EINVAL)?;
                *tag = 0x04;
                xy.get_mut(..2 * n)
                    .ok_or(EINVAL)?
                    .copy_from_slice(public_key);
                point.get(..=2 * n).ok_or(EINVAL)?
            }
            _ => public_key,
        };
        let key_len = u32::try_from(key.len()).map_err(|_| EINVAL)?;

        // SAFETY: The name is a NUL-terminated string; the function has no other requirement.
        let tfm =
            from_err_ptr(unsafe { bindings::crypto_alloc_sig(alg.name().as_char_ptr(), 0, 0) })?;
        let tfm = NonNull::new(tfm).ok_or(ENOMEM)?;
        // SAFETY: `tfm` is a live transform; `key` is valid for reads of `key_len` bytes, which
        // the transform parses (and copies what it keeps) during the call.
        let ret =
            unsafe { bindings::crypto_sig_set_pubkey(tfm.as_ptr(), key.as_ptr().cast(), key_len) };
        if ret != 0 {
            // SAFETY: `tfm` is live and not used after this.
            unsafe { bindings::crypto_free_sig(tfm.as_ptr()) };
            // Like `public_key_verify_signature()`: a positive return is not a valid outcome.
            return Err(if ret < 0 {
                Error::from_errno(ret)
            } else {
                EINVAL
            });
        }
        // INVARIANT: Allocated and keyed above.
        Ok(Self { tfm, alg })
    }

    /// The algorithm.
    pub(crate) fn alg(&self) -> SigAlg {
        self.alg
    }

    /// Size of the key in bits (the RSA modulus, the ECDSA curve order).
    pub(crate) fn key_bits(&self) -> u32 {
        // SAFETY: The transform is live and keyed (type invariant).
        unsafe { bindings::crypto_sig_keysize(self.tfm.as_ptr()) }
    }

    /// Size of a signature in bytes (`r || s` for ECDSA, the modulus size for RSA).
    pub(crate) fn signature_size(&self) -> usize {
        // SAFETY: The transform is live and keyed (type invariant).
        let size = unsafe { bindings::crypto_sig_maxsize(self.tfm.as_ptr()) };
        usize::try_from(size).unwrap_or(usize::MAX)
    }

    /// Verifies `signature` over `digest`, the hash of the signed message.
    ///
    /// Any error means the signature is not valid. The kernel's errnos: `EKEYREJECTED` if the
    /// signature does not match the digest and key; `EBADMSG` if it is malformed (ECDSA `r` or
    /// `s` out of range, RSA padding or DigestInfo wrong); `EINVAL` if a length is wrong
    /// (signature size, digest size for RSA, empty digest) and also for most corrupt RSA
    /// signatures (the recovered value does not start with 0x00).
    pub(crate) fn verify(&self, digest: &[u8], signature: &[u8]) -> Result {
        if digest.is_empty() {
            return Err(EINVAL);
        }
        let sig_len = u32::try_from(signature.len()).map_err(|_| EINVAL)?;
        let digest_len = u32::try_from(digest.len()).map_err(|_| EINVAL)?;
        // SAFETY: The transform is live and keyed (type invariant); `signature` and `digest` are
        // valid for reads of their lengths, which is all the call reads.
        let ret = unsafe {
            bindings::crypto_sig_verify(
                self.tfm.as_ptr(),
                signature.as_ptr().cast(),
                sig_len,
                digest.as_ptr().cast(),
                digest_len,
            )
        };
        match ret {
            0 => Ok(()),
            r if r < 0 => Err(Error::from_errno(r)),
            _ => Err(EINVAL),
        }
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        // SAFETY: The transform is live and owned by `self` (type invariant); nothing uses it
        // after this.
        unsafe { bindings::crypto_free_sig(self.tfm.as_ptr()) };
    }
}

/// Verifies `signature` over `digest` with `public_key` (see [`Verifier`]).
pub(crate) fn verify(alg: SigAlg, public_key: &[u8], digest: &[u8], signature: &[u8]) -> Result {
    Verifier::new(alg, public_key)?.verify(digest, signature)
}

/// Verifies `signature` over `digest`, a `hash` digest, with the public key of `cert`.
///
/// The algorithm follows from the key ([`X509Cert::sig_alg`]); `digest` must be `hash`'s size.
pub(crate) fn verify_with_cert_key(
    cert: &X509Cert,
    hash: HashAlg,
    digest: &[u8],
    signature: &[u8],
) -> Result {
    if digest.len() != hash.digest_size() {
        return Err(EINVAL);
    }
    verify(cert.sig_alg(hash)?, cert.public_key(), digest, signature)
}

/// Returns the `len` bytes at `ptr`, or an empty slice if `ptr` is NULL.
///
/// # Safety
///
/// A non-NULL `ptr` must be valid for reads of `len` bytes for `'a`, unchanged during `'a`.
unsafe fn raw_bytes<'a>(ptr: *const c_void, len: u32) -> &'a [u8] {
    let Ok(len) = usize::try_from(len) else {
        return &[];
    };
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: `ptr` is non-NULL and valid for `len` bytes for `'a` by the safety requirements.
    unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// Returns the C string at `ptr`, or an empty string if `ptr` is NULL.
///
/// # Safety
///
/// A non-NULL `ptr` must point to a NUL-terminated string valid and unchanged for `'a`.
unsafe fn raw_cstr<'a>(ptr: *const c_char) -> &'a CStr {
    if ptr.is_null() {
        return c"";
    }
    // SAFETY: By the safety requirements.
    unsafe { CStr::from_char_ptr(ptr) }
}

/// An X.509 certificate parsed by the kernel's parser (`x509_cert_parse()`).
///
/// Parsing checks the DER structure, extracts the names, validity, key and extensions, computes
/// the digest of the TBSCertificate with the signature's hash, checks it against the blacklist
/// and verifies the self-signature of a certificate whose subject is its issuer. It does not
/// check validity dates or constraints: that is the chain validation's job, with the accessors.
///
/// # Invariants
///
/// `cert` was returned by a successful `x509_cert_parse()` of `der`'s contents, is freed only on
/// drop and never modified: its `pub_` and `sig` are valid, and its pointers into the parsed
/// data (TBS, raw names, ...) point into `der`, which is neither modified nor moved (its heap
/// buffer) while `self` lives.
pub(crate) struct X509Cert {
    cert: NonNull<bindings::x509_certificate>,
    der: KVec<u8>,
}

// SAFETY: The certificate is immutable after parsing and may be freed from any thread.
unsafe impl Send for X509Cert {}
// SAFETY: The certificate is immutable after parsing; `public_key_verify_signature()` only reads
// it, so it may run concurrently on the same certificate.
unsafe impl Sync for X509Cert {}

impl X509Cert {
    /// Parses the DER certificate `der` (one certificate, no trailing data), keeping a copy.
    ///
    /// Fails with `EBADMSG` (or another errno of the parser, e.g. `ENOPKG` for an unsupported
    /// key algorithm) if it is not a certificate the kernel can parse.
    pub(crate) fn parse(der: &[u8]) -> Result<Self> {
        if der.is_empty() {
            return Err(EBADMSG);
        }
        let mut copy = KVec::with_capacity(der.len(), GFP_KERNEL)?;
        copy.extend_from_slice(der, GFP_KERNEL)?;
        // SAFETY: `copy` is valid for reads of its length. The certificate keeps pointers into
        // it; `copy` is stored with the certificate and outlives it (see the type invariants).
        let cert =
            from_err_ptr(unsafe { bindings::x509_cert_parse(copy.as_ptr().cast(), copy.len()) })?;
        let cert = NonNull::new(cert).ok_or(ENOMEM)?;
        // INVARIANT: Parsed successfully from `copy`, which moves into `self` without its heap
        // buffer moving.
        Ok(Self { cert, der: copy })
    }

    fn raw(&self) -> &bindings::x509_certificate {
        // SAFETY: `cert` is valid and not modified while `self` lives (type invariant).
        unsafe { self.cert.as_ref() }
    }

    fn key(&self) -> &bindings::public_key {
        // SAFETY: `pub_` of a parsed certificate is valid while it lives (type invariant).
        unsafe { &*self.raw().pub_ }
    }

    /// The DER encoding the certificate was parsed from.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// The kernel's name of the public key algorithm: `"ecdsa-nist-p256"`, `"ecdsa-nist-p384"`,
    /// `"ecdsa-nist-p521"`, `"rsa"`, ...
    pub(crate) fn pkey_algo(&self) -> &CStr {
        // SAFETY: `pkey_algo` is NULL or one of the parser's static strings.
        unsafe { raw_cstr(self.key().pkey_algo) }
    }

    /// The signature algorithm for verifying with this certificate's key; `hash` selects the
    /// RSA variant (ECDSA takes the digest of any hash). `ENOPKG` for other key algorithms.
    pub(crate) fn sig_alg(&self, hash: HashAlg) -> Result<SigAlg> {
        match self.pkey_algo().to_bytes() {
            b"ecdsa-nist-p256" => Ok(SigAlg::EcdsaP256),
            b"ecdsa-nist-p384" => Ok(SigAlg::EcdsaP384),
            b"ecdsa-nist-p521" => Ok(SigAlg::EcdsaP521),
            b"rsa" => Ok(SigAlg::RsaPkcs1(hash)),
            _ => Err(ENOPKG),
        }
    }

    /// The public key, as `crypto_sig_set_pubkey()` takes it: an uncompressed point for ECDSA, a
    /// DER `RSAPublicKey` for RSA.
    pub(crate) fn public_key(&self) -> &[u8] {
        let key = self.key();
        // SAFETY: The parser allocated `keylen` bytes at `key`, owned by the certificate.
        unsafe { raw_bytes(key.key, key.keylen) }
    }

    /// The subject as the kernel names it (CN, or "O: CN" unless the CN starts with the O).
    pub(crate) fn subject(&self) -> &CStr {
        // SAFETY: The parser allocated the string, owned by the certificate.
        unsafe { raw_cstr(self.raw().subject) }
    }

    /// The issuer as the kernel names it (see [`X509Cert::subject`]).
    pub(crate) fn issuer(&self) -> &CStr {
        // SAFETY: The parser allocated the string, owned by the certificate.
        unsafe { raw_cstr(self.raw().issuer) }
    }

    /// The DER contents of the subject Name.
    pub(crate) fn raw_subject(&self) -> &[u8] {
        let c = self.raw();
        // SAFETY: Points into `self.der` (type invariant).
        unsafe { raw_bytes(c.raw_subject, c.raw_subject_size) }
    }

    /// The DER contents of the issuer Name.
    pub(crate) fn raw_issuer(&self) -> &[u8] {
        let c = self.raw();
        // SAFETY: Points into `self.der` (type invariant).
        unsafe { raw_bytes(c.raw_issuer, c.raw_issuer_size) }
    }

    /// Whether `issuer`'s subject Name is this certificate's issuer Name (byte for byte).
    pub(crate) fn names_issuer(&self, issuer: &X509Cert) -> bool {
        self.raw_issuer() == issuer.raw_subject()
    }

    /// Start of the validity period, seconds since the epoch.
    pub(crate) fn valid_from(&self) -> i64 {
        self.raw().valid_from
    }

    /// End of the validity period, seconds since the epoch.
    pub(crate) fn valid_to(&self) -> i64 {
        self.raw().valid_to
    }

    fn eflag(&self, flag: u32) -> bool {
        self.key().key_eflags & (1 << flag) != 0
    }

    /// basicConstraints says cA = TRUE.
    pub(crate) fn is_ca(&self) -> bool {
        self.eflag(bindings::KEY_EFLAG_CA)
    }

    /// keyUsage asserts digitalSignature (false when there is no keyUsage extension).
    pub(crate) fn digital_signature(&self) -> bool {
        self.eflag(bindings::KEY_EFLAG_DIGITALSIG)
    }

    /// keyUsage asserts keyCertSign (false when there is no keyUsage extension).
    pub(crate) fn key_cert_sign(&self) -> bool {
        self.eflag(bindings::KEY_EFLAG_KEYCERTSIGN)
    }

    /// The subject is the issuer and the certificate's signature verifies with its own key.
    pub(crate) fn is_self_signed(&self) -> bool {
        self.raw().self_signed
    }

    /// The TBSCertificate's SHA-256 is on the system blacklist.
    pub(crate) fn is_blacklisted(&self) -> bool {
        self.raw().blacklisted
    }

    /// The identifiers of the key that signed this certificate (authorityKeyIdentifier's
    /// issuer and serial, its keyIdentifier, and the issuer's name plus serial), each NULL when
    /// the certificate does not give it; as `find_asymmetric_key()` takes them.
    pub(crate) fn authority_ids(
        &self,
    ) -> (
        *const bindings::asymmetric_key_id,
        *const bindings::asymmetric_key_id,
        *const bindings::asymmetric_key_id,
    ) {
        // SAFETY: `sig` of a parsed certificate is valid while it lives (type invariant).
        let sig = unsafe { &*self.raw().sig };
        let [a, b, c] = sig.auth_ids;
        (a.cast_const(), b.cast_const(), c.cast_const())
    }

    /// This certificate's own identifier (issuer name plus serial number), under which a key
    /// made from it is found in a keyring.
    pub(crate) fn own_id(&self) -> *const bindings::asymmetric_key_id {
        self.raw().id.cast_const()
    }

    /// The certificate's signature, for `public_key_verify_signature()`.
    pub(crate) fn signature(&self) -> *const bindings::public_key_signature {
        self.raw().sig.cast_const()
    }

    /// The signature uses an algorithm the kernel cannot verify.
    pub(crate) fn unsupported_sig(&self) -> bool {
        self.raw().unsupported_sig
    }

    /// Verifies this certificate's signature with `issuer`'s public key.
    ///
    /// Only the signature: names, validity and constraints are the caller's to check. Fails with
    /// `EKEYREJECTED` if the signature does not verify or this certificate is blacklisted,
    /// `ENOPKG` if its signature algorithm is not supported, `EBADMSG` if the signature is
    /// malformed, `EINVAL` if the issuer's key does not fit.
    pub(crate) fn verify_signed_by(&self, issuer: &X509Cert) -> Result {
        let c = self.raw();
        if c.blacklisted {
            return Err(EKEYREJECTED);
        }
        if c.unsupported_sig {
            return Err(ENOPKG);
        }
        // SAFETY: Both certificates are valid (type invariant): `issuer.pub_` is a public key
        // and `c.sig` a signature with its digest and signature bytes set (not unsupported),
        // which the call only reads.
        let ret = unsafe { bindings::public_key_verify_signature(issuer.raw().pub_, c.sig) };
        to_result(ret)
    }
}

impl Drop for X509Cert {
    fn drop(&mut self) {
        // SAFETY: `cert` is valid and owned by `self` (type invariant); `der` is freed after it.
        unsafe { bindings::x509_free_certificate(self.cert.as_ptr()) };
    }
}

#[kunit_tests(coco_crypto)]
mod tests {
    use super::*;

    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not a lowercase hex digit"),
        }
    }

    /// Decodes hex at compile time (only used in constants: a bad string fails the build).
    const fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let s = s.as_bytes();
        if s.len() != 2 * N {
            panic!("hex string length does not match the array");
        }
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
            i += 1;
        }
        out
    }

    /// A copy of `bytes` with bit 0 of byte `index` flipped.
    fn flipped(bytes: &[u8], index: usize) -> Result<KVec<u8>> {
        let mut v = KVec::with_capacity(bytes.len(), GFP_KERNEL)?;
        v.extend_from_slice(bytes, GFP_KERNEL)?;
        *v.get_mut(index).ok_or(EINVAL)? ^= 1;
        Ok(v)
    }

    fn errno(r: Result) -> i32 {
        match r {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    // FIPS 180-2 appendix B examples: "abc" and the two-block message.
    const SHA256_ABC: [u8; 32] =
        unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const SHA384_ABC: [u8; 48] = unhex(concat!(
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed",
        "8086072ba1e7cc2358baeca134c825a7"
    ));
    const SHA512_ABC: [u8; 64] = unhex(concat!(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a",
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    ));
    const TWO_BLOCK_MSG: &[u8] = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    const SHA256_TWO_BLOCK: [u8; 32] =
        unhex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    // Generated on the host with Python `cryptography` 48 (fresh keys; private keys discarded):
    // the digests of MSG, ECDSA public keys (uncompressed points) with raw `r || s` signatures of
    // MSG_SHA256 / MSG_SHA384 / MSG_SHA512, an RSA-2048 RSAPublicKey with its PKCS#1 v1.5
    // signature of MSG_SHA256, a P-256 CA (self-signed, cA, keyCertSign) with a leaf it signed
    // (digitalSignature) and the leaf key's signature of MSG_SHA256, and a self-signed RSA
    // certificate of the RSA key.
    const MSG: &[u8] = b"coco: SPDM CHALLENGE_AUTH transcript";
    const MSG_SHA256: [u8; 32] =
        unhex("2d6bc38301d89468fbae3553d24eb56fb789d9035f515ea48ccf999919f119e5");
    const MSG_SHA384: [u8; 48] = unhex(concat!(
        "677b467c6fd365ee536f26e6efce130498040d4b35728ab80cb9e5b31318bbe9",
        "1065a3c3e5480955764d6cbb60df9387"
    ));
    const MSG_SHA512: [u8; 64] = unhex(concat!(
        "5f67b2c169bc01f96e75386b84318051bd2ff96a83ca31c1d541b4b9e93ad6cd",
        "45dc864ab773f8fdf356bc686a84ca84eba90ef7479aaa374fba912a2d39678b"
    ));
    const P256_PUB: [u8; 65] = unhex(concat!(
        "04e91a60cc8713e89e38649207f7e0d126edcf41cf98740d526aee0a32eb7c91",
        "397c12d0380aa0482024008868861382e095c1504db59b7c47f33befb08d03bd",
        "9b"
    ));
    const P256_SIG: [u8; 64] = unhex(concat!(
        "fca5792c5f2d8ea72523382497e50b54972a2797d86dd619845441ecaf1639d2",
        "3ff90f48b60feb4fba0ccd74b38bd2fcc0d5db3869c10f4143b202bee52424b3"
    ));
    const P384_PUB: [u8; 97] = unhex(concat!(
        "0431bf79365da555d68f5251f736719505cce37d94e50fcf233efb6b74c437ce",
        "e154d83525239781f879c0c973bab43e513dc07a31c0e102a2367a1711ccba5f",
        "e4dc1fb3fbe0a023aad3a92531d89ac22e6bc00192b3265cbda7b94b31e236fe",
        "42"
    ));
    const P384_SIG: [u8; 96] = unhex(concat!(
        "9b2ac328bf16fc5a593b91db44588e8f77b42ebaf5cf37dc6f5353da34372cbd",
        "d777ef23db4f1e922575c6113175a3edd65ff04c13d7264f4d91eaa3052e3f01",
        "b849f9ea360d93fb482ab22224a0d31147216139b611364e07a35d9f86347486"
    ));
    const P521_PUB: [u8; 133] = unhex(concat!(
        "0401cc8a06d6909166d43758c20ce6d60879e8168a044a4417f3c17e7984397c",
        "f6a28903b74e6d0383fdb2caa6565d0f0e6402d8d7bac490907797210336e0d0",
        "7115e20159f2bfc93341afd2feae30c5c2db2b27ac35a484c7f53f834066b8e9",
        "8be3308591c54c11a43a23a7f609fd06c83d71ff568192ef18f8c37e42759955",
        "90beab72b2"
    ));
    const P521_SIG: [u8; 132] = unhex(concat!(
        "00126192412df537767a8151c86990a8d0ca05ee7b2770cc2d325d78845503c5",
        "e6272023dac436a28acccc073f2f58b3f655a37bb60e79aed013c7b7c081d223",
        "add2009107f9acdb205602e19009b2f6a777b51e2bbec8956fa7b66552ebd1ba",
        "c8c714a3e58bf0392839cf0b7aaec6e008cc566555b2fd10aadf35e562f5b809",
        "e618cc58"
    ));
    const RSA_PUB: [u8; 270] = unhex(concat!(
        "3082010a0282010100bcf038388509471806e4f835138b0c021c9452c39dbe08",
        "e13cab369f169004567ab7bac45994f13e4e718f1dab7dd4df2249066a80937d",
        "9974a1d91598b8b0850747358c3bbb650d0725965ac100300a1c4f172d5a6c98",
        "5503bb2298ea3b2a94fe7f0d0cadee0e0a1dfcbc66b2caaa24fcd162ec59d8cd",
        "49a55a4dd9fcad7ac25bf43f1ca21e8ae05f98f8fed435c6816e9a825ab83722",
        "9d0534374ede6a08fedad61efbd1176c1b3124ff82f82f62bf77425338e21b8b",
        "805d0b7e38735ccd6106867e117ce9fc76eb61afb6651fca6bc2b01193256bda",
        "0f935e2130f43f30a65acd783675556602ef8eecc1a05e6f12c74bbdd6644930",
        "117e70b9375a7bcd330203010001"
    ));
    const RSA_SIG: [u8; 256] = unhex(concat!(
        "817a8aac5ce83947c8252ca0d4e75435d2db9667e7ea53e64c591e4ef4e1bc96",
        "711f1aa24aee09503fdc7aa2c80a3360ba1510e05f748ccc3f8bee38e25248ae",
        "5b01d87c3042778ae2a75db0fe6d5daecc70694ec65ebcc5075d07698ffc0e94",
        "bb0f86a7a5eb8527f53a93351fcbe7598b354ee50d3af74724d0693e92c0bae8",
        "8e9393455a3b5f957926f9367c0b06b98c94c00eff550b4d83339372839378b3",
        "2f303a6786a36e62599a2b5ec8847dbfe67fee1cc0d1911a419f793cee8955e1",
        "86930bc506268d60d031045af314a77a8bacf680ee8d1a5f260a4949669b95a2",
        "bb0be926e70da853d7fbae01434b00653d769a4e768b304f4cc793c9150c23f6"
    ));
    const CA_CERT: [u8; 417] = unhex(concat!(
        "3082019d30820144a003020102020101300a06082a8648ce3d0403023026310d",
        "300b060355040a0c04636f636f3115301306035504030c0c636f636f20746573",
        "74204341301e170d3235303130313030303030305a170d343530313031303030",
        "3030305a3026310d300b060355040a0c04636f636f3115301306035504030c0c",
        "636f636f20746573742043413059301306072a8648ce3d020106082a8648ce3d",
        "03010703420004d749438f68df7dba05eb6c3af44d103af76f8087a8784c4440",
        "c31c775926f895c649700bdc36efc057087af801d4b081b465388fd9653c2a8a",
        "1ead898f644ff8a3633061300f0603551d130101ff040530030101ff300e0603",
        "551d0f0101ff040403020106301d0603551d0e04160414f4269472e9eeba4652",
        "9f9674d9ff471bfe26c2c6301f0603551d23041830168014f4269472e9eeba46",
        "529f9674d9ff471bfe26c2c6300a06082a8648ce3d040302034700304402206c",
        "ba44736daa3be77bc1916f1504b8041f1b0cc229ad3d01c7556cc2284bc45e02",
        "201caa95acb2d637cacdfc7520a843e20b45d1839aec49c88b3ae0d2fcf58a82",
        "78"
    ));
    const LEAF_CERT: [u8; 418] = unhex(concat!(
        "3082019e30820143a003020102020102300a06082a8648ce3d0403023026310d",
        "300b060355040a0c04636f636f3115301306035504030c0c636f636f20746573",
        "74204341301e170d3235303130313030303030305a170d343530313031303030",
        "3030305a3028310d300b060355040a0c04636f636f3117301506035504030c0e",
        "636f636f2074657374206c6561663059301306072a8648ce3d020106082a8648",
        "ce3d03010703420004952407100198e2c4d71e450a27266d6d08096db49b5507",
        "915228645545dd8fc3b80a8ca2bcaeebbb821d21f6f645dacfaca3c1c3da96cc",
        "1d45660f0b59b87653a360305e300c0603551d130101ff04023000300e060355",
        "1d0f0101ff040403020780301d0603551d0e04160414a65253e5dbb018c6998d",
        "0c5a022c25305c96063e301f0603551d23041830168014f4269472e9eeba4652",
        "9f9674d9ff471bfe26c2c6300a06082a8648ce3d04030203490030460221009a",
        "7cf6209b8f3a496e5afc3186ee7cc6f7a5d5a05235d6f28bc96ca4182188c302",
        "21008713debf77e1f64a5f930fdb6e8f5ef786ed57fdaeb90cb84a47de69a874",
        "5ec4"
    ));
    const LEAF_PUB: [u8; 65] = unhex(concat!(
        "04952407100198e2c4d71e450a27266d6d08096db49b5507915228645545dd8f",
        "c3b80a8ca2bcaeebbb821d21f6f645dacfaca3c1c3da96cc1d45660f0b59b876",
        "53"
    ));
    const LEAF_SIG: [u8; 64] = unhex(concat!(
        "2ff00c391f509cf75c0fecc6350b69c8dae510ca1efe57665f2bb151a7609c3e",
        "43811d11cc6f25841f31ce49f1e130997024740b24ad17168812d1a11f7093df"
    ));
    const RSA_CERT: [u8; 816] = unhex(concat!(
        "3082032c30820214a003020102020103300d06092a864886f70d01010b050030",
        "27310d300b060355040a0c04636f636f3116301406035504030c0d636f636f20",
        "7465737420525341301e170d3235303130313030303030305a170d3435303130",
        "313030303030305a3027310d300b060355040a0c04636f636f31163014060355",
        "04030c0d636f636f20746573742052534130820122300d06092a864886f70d01",
        "010105000382010f003082010a0282010100bcf038388509471806e4f835138b",
        "0c021c9452c39dbe08e13cab369f169004567ab7bac45994f13e4e718f1dab7d",
        "d4df2249066a80937d9974a1d91598b8b0850747358c3bbb650d0725965ac100",
        "300a1c4f172d5a6c985503bb2298ea3b2a94fe7f0d0cadee0e0a1dfcbc66b2ca",
        "aa24fcd162ec59d8cd49a55a4dd9fcad7ac25bf43f1ca21e8ae05f98f8fed435",
        "c6816e9a825ab837229d0534374ede6a08fedad61efbd1176c1b3124ff82f82f",
        "62bf77425338e21b8b805d0b7e38735ccd6106867e117ce9fc76eb61afb6651f",
        "ca6bc2b01193256bda0f935e2130f43f30a65acd783675556602ef8eecc1a05e",
        "6f12c74bbdd6644930117e70b9375a7bcd330203010001a3633061300f060355",
        "1d130101ff040530030101ff300e0603551d0f0101ff040403020106301d0603",
        "551d0e0416041491c288dfea48630a564c4ce34a3eaafcf0f170a4301f060355",
        "1d2304183016801491c288dfea48630a564c4ce34a3eaafcf0f170a4300d0609",
        "2a864886f70d01010b05000382010100276f0cc0efedaade1d64a34c7d302322",
        "5ed6767c14b7d6029a5d83cce46cc300fdb37d6826256095787bb943c6e1f6da",
        "eb16db45dad49f23c79ce15c8ea63d09eedd38cae833657b78a54d363808cd36",
        "1fb50cc863ccd56dfd74a9858bc878fc9901c6381bb15fd9a6899f92c01b1b5a",
        "3273b86fc3acbb13e3a82514ee7a0f7bc10acccc4d681f501db77c42f10e59ad",
        "cd8ad4b4478df8532a2f81f422ba0bef141d5a67255b99f5c97cd2bc7e118251",
        "2010070fb216909e2aef2b3f414201bbf976f1e56431641ed849de2c75de6ca5",
        "766be866173b9bfe2137e914cfba065ead65a1e1407ffbcef80c1e10923abdca",
        "57ed885f703a77f14ff9bc68d20dc0a1"
    ));
    // notBefore 2025-01-01, notAfter 2045-01-01 (UTC).
    const VALID_FROM: i64 = 1_735_689_600;
    const VALID_TO: i64 = 2_366_841_600;

    #[test]
    fn sha2_fips180_abc() -> Result {
        let mut out = [0u8; MAX_DIGEST_SIZE];
        assert_eq!(digest(HashAlg::Sha256, b"abc", &mut out)?, 32);
        assert_eq!(out.get(..32), Some(&SHA256_ABC[..]));
        assert_eq!(digest(HashAlg::Sha384, b"abc", &mut out)?, 48);
        assert_eq!(out.get(..48), Some(&SHA384_ABC[..]));
        assert_eq!(digest(HashAlg::Sha512, b"abc", &mut out)?, 64);
        assert_eq!(out, SHA512_ABC);
        Ok(())
    }

    #[test]
    fn sha2_of_the_signed_message() -> Result {
        let mut out = [0u8; MAX_DIGEST_SIZE];
        assert_eq!(digest(HashAlg::Sha256, MSG, &mut out)?, 32);
        assert_eq!(out.get(..32), Some(&MSG_SHA256[..]));
        assert_eq!(digest(HashAlg::Sha384, MSG, &mut out)?, 48);
        assert_eq!(out.get(..48), Some(&MSG_SHA384[..]));
        assert_eq!(digest(HashAlg::Sha512, MSG, &mut out)?, 64);
        assert_eq!(out, MSG_SHA512);
        Ok(())
    }

    #[test]
    fn sha256_incremental_sink_and_reuse() -> Result {
        let mut out = [0u8; 32];
        let mut hash = Hash::new(HashAlg::Sha256)?;
        assert_eq!(hash.alg(), HashAlg::Sha256);
        // As the SPDM transcript is fed: odd-sized pieces, through the sink trait.
        for piece in TWO_BLOCK_MSG.chunks(7) {
            TranscriptSink::update(&mut hash, piece);
        }
        assert_eq!(hash.finalize(&mut out)?, 32);
        assert_eq!(out, SHA256_TWO_BLOCK);
        // finalize() started over.
        hash.update(b"a")?;
        hash.update(b"")?;
        hash.update(b"bc")?;
        // Too short an output buffer is refused and keeps the computation.
        assert_eq!(
            errno(hash.finalize(&mut out[..31]).map(|_| ())),
            EINVAL.to_errno()
        );
        assert_eq!(hash.finalize(&mut out)?, 32);
        assert_eq!(out, SHA256_ABC);
        assert_eq!(
            errno(digest(HashAlg::Sha384, b"abc", &mut out).map(|_| ())),
            EINVAL.to_errno()
        );
        Ok(())
    }

    /// A valid signature verifies; one flipped bit in the signature or the digest is rejected.
    fn check_sig(alg: SigAlg, key: &[u8], digest: &[u8], sig: &[u8], bad_sig_errno: i32) -> Result {
        assert_eq!(errno(verify(alg, key, digest, sig)), 0);
        let last = sig.len() - 1;
        assert_eq!(
            errno(verify(alg, key, digest, &flipped(sig, last)?)),
            bad_sig_errno
        );
        assert_eq!(
            errno(verify(alg, key, &flipped(digest, 0)?, sig)),
            EKEYREJECTED.to_errno()
        );
        // A signature of the wrong size.
        assert_eq!(
            errno(verify(alg, key, digest, &sig[..last])),
            EINVAL.to_errno()
        );
        Ok(())
    }

    #[test]
    fn ecdsa_p256() -> Result {
        check_sig(
            SigAlg::EcdsaP256,
            &P256_PUB,
            &MSG_SHA256,
            &P256_SIG,
            EKEYREJECTED.to_errno(),
        )?;
        let v = Verifier::new(SigAlg::EcdsaP256, &P256_PUB)?;
        assert_eq!(v.alg(), SigAlg::EcdsaP256);
        assert_eq!(v.key_bits(), 256);
        assert_eq!(v.signature_size(), 64);
        // The bare X || Y works too.
        assert_eq!(
            errno(verify(
                SigAlg::EcdsaP256,
                &P256_PUB[1..],
                &MSG_SHA256,
                &P256_SIG
            )),
            0
        );
        // A point that is not on the curve, and a key of another curve, are refused.
        assert_eq!(
            errno(Verifier::new(SigAlg::EcdsaP256, &flipped(&P256_PUB, 64)?).map(|_| ())),
            EINVAL.to_errno()
        );
        assert_eq!(
            errno(Verifier::new(SigAlg::EcdsaP384, &P256_PUB).map(|_| ())),
            EINVAL.to_errno()
        );
        // r = 0 is out of range.
        let mut zero_r = flipped(&P256_SIG, 0)?;
        zero_r.iter_mut().take(32).for_each(|b| *b = 0);
        assert_eq!(
            errno(verify(SigAlg::EcdsaP256, &P256_PUB, &MSG_SHA256, &zero_r)),
            EBADMSG.to_errno()
        );
        Ok(())
    }

    #[test]
    fn ecdsa_p384() -> Result {
        check_sig(
            SigAlg::EcdsaP384,
            &P384_PUB,
            &MSG_SHA384,
            &P384_SIG,
            EKEYREJECTED.to_errno(),
        )?;
        assert_eq!(
            Verifier::new(SigAlg::EcdsaP384, &P384_PUB)?.signature_size(),
            96
        );
        Ok(())
    }

    #[test]
    fn ecdsa_p521() -> Result {
        check_sig(
            SigAlg::EcdsaP521,
            &P521_PUB,
            &MSG_SHA512,
            &P521_SIG,
            EKEYREJECTED.to_errno(),
        )?;
        let v = Verifier::new(SigAlg::EcdsaP521, &P521_PUB)?;
        assert_eq!(v.key_bits(), 521);
        assert_eq!(v.signature_size(), 132);
        Ok(())
    }

    #[test]
    fn rsa2048_pkcs1_sha256() -> Result {
        let alg = SigAlg::RsaPkcs1(HashAlg::Sha256);
        // A corrupt signature raises to a value whose top byte is (almost surely) not the 0x00
        // of EMSA-PKCS1-v1_5, which `rsassa_pkcs1_verify()` reports as EINVAL.
        check_sig(alg, &RSA_PUB, &MSG_SHA256, &RSA_SIG, EINVAL.to_errno())?;
        let v = Verifier::new(alg, &RSA_PUB)?;
        assert_eq!(v.key_bits(), 2048);
        assert_eq!(v.signature_size(), 256);
        // The DigestInfo names SHA-256: verifying as SHA-384 fails on the digest size.
        let sha384 = SigAlg::RsaPkcs1(HashAlg::Sha384);
        assert_eq!(
            errno(verify(sha384, &RSA_PUB, &MSG_SHA256, &RSA_SIG)),
            EINVAL.to_errno()
        );
        assert_eq!(
            errno(verify(sha384, &RSA_PUB, &MSG_SHA384, &RSA_SIG)),
            EBADMSG.to_errno()
        );
        // Not an RSAPublicKey.
        assert_eq!(
            errno(Verifier::new(alg, &P256_PUB).map(|_| ())),
            EBADMSG.to_errno()
        );
        Ok(())
    }

    #[test]
    fn x509_ca_and_leaf() -> Result {
        let ca = X509Cert::parse(&CA_CERT)?;
        let leaf = X509Cert::parse(&LEAF_CERT)?;
        assert_eq!(ca.der(), &CA_CERT[..]);
        assert_eq!(ca.subject().to_bytes(), b"coco test CA");
        assert_eq!(ca.issuer().to_bytes(), b"coco test CA");
        assert_eq!(leaf.subject().to_bytes(), b"coco test leaf");
        assert_eq!(leaf.issuer().to_bytes(), b"coco test CA");
        assert!(leaf.names_issuer(&ca));
        assert!(!ca.names_issuer(&leaf));
        assert_eq!(ca.pkey_algo().to_bytes(), b"ecdsa-nist-p256");
        assert_eq!(leaf.sig_alg(HashAlg::Sha384)?, SigAlg::EcdsaP256);
        assert_eq!(leaf.valid_from(), VALID_FROM);
        assert_eq!(leaf.valid_to(), VALID_TO);
        assert!(ca.is_ca() && ca.key_cert_sign() && !ca.digital_signature());
        assert!(!leaf.is_ca() && !leaf.key_cert_sign() && leaf.digital_signature());
        assert!(ca.is_self_signed() && !leaf.is_self_signed());
        assert!(!ca.is_blacklisted() && !leaf.is_blacklisted());

        assert_eq!(errno(leaf.verify_signed_by(&ca)), 0);
        assert_eq!(errno(ca.verify_signed_by(&ca)), 0);
        assert_eq!(errno(ca.verify_signed_by(&leaf)), EKEYREJECTED.to_errno());
        assert_eq!(errno(leaf.verify_signed_by(&leaf)), EKEYREJECTED.to_errno());
        // A leaf whose subject was changed still parses, but the CA's signature fails.
        let pos = LEAF_CERT
            .windows(4)
            .position(|w| w == b"leaf")
            .ok_or(EINVAL)?;
        let forged = X509Cert::parse(&flipped(&LEAF_CERT, pos)?)?;
        assert_eq!(forged.subject().to_bytes(), b"coco test meaf");
        assert_eq!(errno(forged.verify_signed_by(&ca)), EKEYREJECTED.to_errno());

        // The certificate's key is in the form crypto_sig takes.
        assert_eq!(leaf.public_key(), &LEAF_PUB[..]);
        assert_eq!(
            errno(verify_with_cert_key(
                &leaf,
                HashAlg::Sha256,
                &MSG_SHA256,
                &LEAF_SIG
            )),
            0
        );
        assert_eq!(
            errno(verify_with_cert_key(
                &ca,
                HashAlg::Sha256,
                &MSG_SHA256,
                &LEAF_SIG
            )),
            EKEYREJECTED.to_errno()
        );
        assert_eq!(
            errno(verify_with_cert_key(
                &leaf,
                HashAlg::Sha384,
                &MSG_SHA256,
                &LEAF_SIG
            )),
            EINVAL.to_errno()
        );
        Ok(())
    }

    #[test]
    fn x509_rsa_key() -> Result {
        let cert = X509Cert::parse(&RSA_CERT)?;
        assert_eq!(cert.pkey_algo().to_bytes(), b"rsa");
        assert!(cert.is_self_signed() && cert.is_ca());
        assert_eq!(cert.public_key(), &RSA_PUB[..]);
        let alg = cert.sig_alg(HashAlg::Sha256)?;
        assert_eq!(alg, SigAlg::RsaPkcs1(HashAlg::Sha256));
        assert_eq!(
            errno(verify_with_cert_key(
                &cert,
                HashAlg::Sha256,
                &MSG_SHA256,
                &RSA_SIG
            )),
            0
        );
        Ok(())
    }

    #[test]
    fn x509_garbage() -> Result {
        assert_eq!(errno(X509Cert::parse(b"").map(|_| ())), EBADMSG.to_errno());
        assert_eq!(
            errno(X509Cert::parse(b"not a certificate").map(|_| ())),
            EBADMSG.to_errno()
        );
        assert_eq!(
            errno(X509Cert::parse(&CA_CERT[..CA_CERT.len() - 1]).map(|_| ())),
            EBADMSG.to_errno()
        );
        assert_eq!(
            errno(X509Cert::parse(&CA_CERT[4..]).map(|_| ())),
            EBADMSG.to_errno()
        );
        Ok(())
    }
}
