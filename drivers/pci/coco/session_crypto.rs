// SPDX-License-Identifier: GPL-2.0

//! Kernel crypto glue for SPDM secure sessions: HMAC (`crypto_shash` "hmac(shaN)"), HKDF built
//! on it (RFC 5869: two HMAC compositions, no primitive of our own), ECDH ephemeral keys
//! (`crypto_kpp` "ecdh-nist-p256/p384") and AEAD (`crypto_aead` "gcm(aes)",
//! "rfc7539(chacha20,poly1305)").
//!
//! The transforms are allocated synchronous (mask `CRYPTO_ALG_ASYNC`), so every call completes
//! before it returns. Data handed to scatterlists lives in kmalloc'd buffers (never on the
//! stack, which may be vmalloc'd). Secrets held here are zeroised when dropped.

use crate::crypto::HashAlg;
use core::ptr::NonNull;
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    ffi::c_void,
    prelude::*,
};

/// `CRYPTO_ALG_ASYNC`: asked for in the mask, so that only synchronous implementations match.
const ASYNC: u32 = bindings::CRYPTO_ALG_ASYNC;

/// Overwrites `buf` with zeroes in a way the compiler does not elide.
pub(crate) fn zeroize(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference; a volatile write is not elided.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// A kmalloc'd buffer that is zeroised when dropped.
pub(crate) struct SecretBuf(pub(crate) KVec<u8>);

impl SecretBuf {
    pub(crate) fn zeroed(len: usize) -> Result<Self> {
        Ok(Self(KVec::from_elem(0u8, len, GFP_KERNEL)?))
    }

    pub(crate) fn from_slice(s: &[u8]) -> Result<Self> {
        let mut v = KVec::with_capacity(s.len(), GFP_KERNEL)?;
        v.extend_from_slice(s, GFP_KERNEL)?;
        Ok(Self(v))
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        zeroize(&mut self.0);
    }
}

/// One scatterlist entry over `buf`.
///
/// # Safety
///
/// `buf` must be kmalloc'd memory (not stack, not vmalloc) that outlives the use of the
/// returned scatterlist.
unsafe fn sg_one(buf: &mut [u8]) -> Result<bindings::scatterlist> {
    let len = u32::try_from(buf.len()).map_err(|_| EINVAL)?;
    // SAFETY: An all-zero scatterlist is its initial state; `sg_init_one()` sets it up.
    let mut sg: bindings::scatterlist = unsafe { core::mem::zeroed() };
    // SAFETY: `sg` is a valid scatterlist; `buf` is valid for `len` bytes of linear-mapped
    // memory by the safety requirements.
    unsafe { bindings::sg_init_one(&mut sg, buf.as_mut_ptr().cast::<c_void>(), len) };
    Ok(sg)
}

/// HMAC with one hash: `crypto_shash` "hmac(sha256|sha384|sha512)".
///
/// # Invariants
///
/// `tfm` was returned by a successful `crypto_alloc_shash()` and is freed only on drop.
pub(crate) struct Hmac {
    tfm: NonNull<bindings::crypto_shash>,
    alg: HashAlg,
}

// SAFETY: The transform is only used through `&mut self` (setkey then digest), which the
// crypto API allows from any thread.
unsafe impl Send for Hmac {}

impl Hmac {
    pub(crate) fn new(alg: HashAlg) -> Result<Self> {
        let name: &CStr = match alg {
            HashAlg::Sha256 => c"hmac(sha256)",
            HashAlg::Sha384 => c"hmac(sha384)",
            HashAlg::Sha512 => c"hmac(sha512)",
        };
        // SAFETY: The name is a NUL-terminated string.
        let tfm = from_err_ptr(unsafe { bindings::crypto_alloc_shash(name.as_char_ptr(), 0, 0) })?;
        // INVARIANT: A pointer that is not an error pointer is a live transform.
        let tfm = NonNull::new(tfm).ok_or(ENOMEM)?;
        Ok(Self { tfm, alg })
    }

    /// The MAC size (the hash's digest size).
    pub(crate) fn size(&self) -> usize {
        self.alg.digest_size()
    }

    /// HMAC(`key`, concatenation of `parts`) into `out` (at least [`Hmac::size`] bytes).
    pub(crate) fn mac(&mut self, key: &[u8], parts: &[&[u8]], out: &mut [u8]) -> Result<usize> {
        let size = self.size();
        let out = out.get_mut(..size).ok_or(EINVAL)?;
        let klen = u32::try_from(key.len()).map_err(|_| EINVAL)?;
        // SAFETY: The transform is live (type invariant); `key` is valid for `klen` bytes.
        to_result(unsafe { bindings::crypto_shash_setkey(self.tfm.as_ptr(), key.as_ptr(), klen) })?;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut data = SecretBuf(KVec::with_capacity(total, GFP_KERNEL)?);
        for p in parts {
            data.0.extend_from_slice(p, GFP_KERNEL)?;
        }
        let dlen = u32::try_from(data.0.len()).map_err(|_| EINVAL)?;
        // SAFETY: The transform is live and keyed; `data` is valid for `dlen` bytes and `out`
        // for the digest size.
        to_result(unsafe {
            bindings::crypto_shash_tfm_digest(
                self.tfm.as_ptr(),
                data.0.as_ptr(),
                dlen,
                out.as_mut_ptr(),
            )
        })?;
        Ok(size)
    }

    /// HKDF-Extract(salt, ikm) (RFC 5869 sec 2.2): HMAC(salt, ikm); an empty salt is a string
    /// of zeroes of the hash size.
    pub(crate) fn hkdf_extract(
        &mut self,
        salt: &[u8],
        ikm: &[u8],
        prk: &mut [u8],
    ) -> Result<usize> {
        let zeros = [0u8; crate::crypto::MAX_DIGEST_SIZE];
        let salt = if salt.is_empty() {
            zeros.get(..self.size()).ok_or(EINVAL)?
        } else {
            salt
        };
        self.mac(salt, &[ikm], prk)
    }

    /// HKDF-Expand(prk, info, out.len()) (RFC 5869 sec 2.3).
    pub(crate) fn hkdf_expand(&mut self, prk: &[u8], info: &[u8], out: &mut [u8]) -> Result {
        let size = self.size();
        if out.len() > 255 * size {
            return Err(EINVAL);
        }
        let mut t = [0u8; crate::crypto::MAX_DIGEST_SIZE];
        let mut t_len = 0usize;
        let mut done = 0usize;
        let mut counter = 1u8;
        while done < out.len() {
            let prev = t.get(..t_len).ok_or(EINVAL)?;
            let mut next = [0u8; crate::crypto::MAX_DIGEST_SIZE];
            self.mac(prk, &[prev, info, &[counter]], &mut next)?;
            t = next;
            zeroize(&mut next);
            t_len = size;
            let n = (out.len() - done).min(size);
            out.get_mut(done..done + n)
                .ok_or(EINVAL)?
                .copy_from_slice(t.get(..n).ok_or(EINVAL)?);
            done += n;
            counter = counter.wrapping_add(1);
        }
        zeroize(&mut t);
        Ok(())
    }
}

impl Drop for Hmac {
    fn drop(&mut self) {
        // SAFETY: The transform is live and owned (type invariant); freeing it also frees the
        // key it holds.
        unsafe { bindings::crypto_free_shash(self.tfm.as_ptr()) };
    }
}

/// An elliptic curve for ECDHE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Curve {
    P256,
    P384,
}

impl Curve {
    /// Size of a coordinate (and of the shared secret).
    pub(crate) const fn size(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    const fn name(self) -> &'static CStr {
        match self {
            Self::P256 => c"ecdh-nist-p256",
            Self::P384 => c"ecdh-nist-p384",
        }
    }
}

/// An ECDH key pair in `crypto_kpp` (the private key never leaves the transform).
///
/// # Invariants
///
/// `tfm` was returned by a successful `crypto_alloc_kpp()`, holds a private key, and is freed
/// only on drop.
pub(crate) struct Ecdh {
    tfm: NonNull<bindings::crypto_kpp>,
    curve: Curve,
}

// SAFETY: The transform is only used through `&self` for one request at a time by the session
// that owns it.
unsafe impl Send for Ecdh {}

impl Ecdh {
    /// A fresh ephemeral key pair, its private key from the kernel's RNG (`get_random_bytes()`)
    /// rather than the crypto API's default RNG ("stdrng", which needs a DRBG the module does
    /// not otherwise depend on). A random scalar outside [1, n-1] is refused by `set_secret`
    /// and drawn again (probability below 2^-32 per draw for P-256 and P-384).
    pub(crate) fn generate(curve: Curve) -> Result<Self> {
        let mut private = SecretBuf::zeroed(curve.size())?;
        let mut last = EINVAL;
        for _ in 0..4 {
            // SAFETY: `private` is valid for writes of its length.
            unsafe { bindings::get_random_bytes(private.0.as_mut_ptr().cast(), private.0.len()) };
            match Self::with_private(curve, &private.0) {
                Ok(k) => return Ok(k),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A key pair with the given private key (big-endian scalar).
    pub(crate) fn with_private(curve: Curve, private: &[u8]) -> Result<Self> {
        if private.len() != curve.size() {
            return Err(EINVAL);
        }
        // SAFETY: The name is a NUL-terminated string.
        let tfm = from_err_ptr(unsafe {
            bindings::crypto_alloc_kpp(curve.name().as_char_ptr(), 0, ASYNC)
        })?;
        let tfm = NonNull::new(tfm).ok_or(ENOMEM)?;
        // INVARIANT: set below before `Self` is returned; on error the transform is freed by
        // the drop of `this`.
        let this = Self { tfm, curve };
        let mut secret = SecretBuf::from_slice(private)?;
        let params = bindings::ecdh {
            key: secret.0.as_mut_ptr().cast(),
            key_size: u16::try_from(private.len()).map_err(|_| EINVAL)?,
        };
        // SAFETY: `params` is a valid `struct ecdh`.
        let len = unsafe { bindings::crypto_ecdh_key_len(&params) };
        let mut packed = SecretBuf::zeroed(len as usize)?;
        // SAFETY: `packed` is valid for `len` bytes; `params.key` is valid for `key_size`
        // bytes.
        to_result(unsafe {
            bindings::crypto_ecdh_encode_key(packed.0.as_mut_ptr().cast(), len, &params)
        })?;
        // SAFETY: The transform is live; `packed` is valid for `len` bytes.
        to_result(unsafe {
            bindings::crypto_kpp_set_secret(this.tfm.as_ptr(), packed.0.as_ptr().cast(), len)
        })?;
        Ok(this)
    }

    /// Runs one KPP request: `input` (None: public key generation) into `out`.
    fn run(&self, input: Option<&[u8]>, out: &mut [u8]) -> Result {
        // SAFETY: The transform is live.
        let req = unsafe { bindings::kpp_request_alloc(self.tfm.as_ptr(), bindings::GFP_KERNEL) };
        let req = NonNull::new(req).ok_or(ENOMEM)?;
        let mut inbuf = SecretBuf::from_slice(input.unwrap_or(&[0u8]))?;
        let mut outbuf = SecretBuf::zeroed(out.len())?;
        let ret = (|| -> Result {
            // SAFETY: `outbuf` and `inbuf` are kmalloc'd (not empty) and live until the request
            // is freed.
            let mut sg_out = unsafe { sg_one(&mut outbuf.0)? };
            // No scatterlist over the empty buffer of a key generation.
            let mut sg_in = match input {
                // SAFETY: As above.
                Some(_) => Some(unsafe { sg_one(&mut inbuf.0)? }),
                None => None,
            };
            let out_len = u32::try_from(out.len()).map_err(|_| EINVAL)?;
            let in_len = u32::try_from(inbuf.0.len()).map_err(|_| EINVAL)?;
            // SAFETY: `req` is a live request of this transform; the scatterlists are valid for
            // the call; no callback (synchronous transform). Every field the operation reads is
            // set: `kpp_request_alloc()` does not zero the request, and a stale `src` turns
            // public key generation into a shared-secret computation.
            unsafe {
                bindings::kpp_request_set_callback(req.as_ptr(), 0, None, core::ptr::null_mut());
                bindings::kpp_request_set_output(req.as_ptr(), &mut sg_out, out_len);
                if let Some(sg_in) = sg_in.as_mut() {
                    bindings::kpp_request_set_input(req.as_ptr(), sg_in, in_len);
                    to_result(bindings::crypto_kpp_compute_shared_secret(req.as_ptr()))
                } else {
                    // kpp_request_alloc() does not zero the request, and the ECDH driver
                    // computes a shared secret whenever `src` is set: clear it.
                    bindings::kpp_request_set_input(req.as_ptr(), core::ptr::null_mut(), 0);
                    to_result(bindings::crypto_kpp_generate_public_key(req.as_ptr()))
                }
            }
        })();
        // SAFETY: Allocated above, not used after.
        unsafe { bindings::kpp_request_free(req.as_ptr()) };
        ret?;
        out.copy_from_slice(&outbuf.0);
        Ok(())
    }

    /// The public key as SPDM carries it: X || Y, 2 * [`Curve::size`] bytes.
    pub(crate) fn public_key(&self, out: &mut [u8]) -> Result<usize> {
        let n = 2 * self.curve.size();
        self.run(None, out.get_mut(..n).ok_or(EINVAL)?)?;
        Ok(n)
    }

    /// The shared secret with the peer's public key `peer` (X || Y): the X coordinate of the
    /// shared point, [`Curve::size`] bytes. The kernel checks that the point is on the curve.
    pub(crate) fn shared_secret(&self, peer: &[u8], out: &mut [u8]) -> Result<usize> {
        let n = self.curve.size();
        if peer.len() != 2 * n {
            return Err(EINVAL);
        }
        self.run(Some(peer), out.get_mut(..n).ok_or(EINVAL)?)?;
        Ok(n)
    }
}

impl Drop for Ecdh {
    fn drop(&mut self) {
        // SAFETY: The transform is live and owned (type invariant); freeing it frees the
        // private key.
        unsafe { bindings::crypto_free_kpp(self.tfm.as_ptr()) };
    }
}

/// An AEAD algorithm of secured messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AeadAlg {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl AeadAlg {
    const fn name(self) -> &'static CStr {
        match self {
            // The key size selects AES-128 or AES-256.
            Self::Aes128Gcm | Self::Aes256Gcm => c"gcm(aes)",
            Self::ChaCha20Poly1305 => c"rfc7539(chacha20,poly1305)",
        }
    }

    /// Key size.
    pub(crate) const fn key_size(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
        }
    }
}

/// Size of the IV and of the authentication tag.
pub(crate) const AEAD_IV_SIZE: usize = 12;
pub(crate) const AEAD_TAG_SIZE: usize = 16;

/// A keyed AEAD transform.
///
/// # Invariants
///
/// `tfm` was returned by a successful `crypto_alloc_aead()`, is keyed with a 16-byte tag, and is
/// freed only on drop.
pub(crate) struct Aead {
    tfm: NonNull<bindings::crypto_aead>,
}

// SAFETY: The transform is used for one request at a time by the session that owns it.
unsafe impl Send for Aead {}

impl Aead {
    pub(crate) fn new(alg: AeadAlg, key: &[u8]) -> Result<Self> {
        if key.len() != alg.key_size() {
            return Err(EINVAL);
        }
        // SAFETY: The name is a NUL-terminated string.
        let tfm = from_err_ptr(unsafe {
            bindings::crypto_alloc_aead(alg.name().as_char_ptr(), 0, ASYNC)
        })?;
        let tfm = NonNull::new(tfm).ok_or(ENOMEM)?;
        let this = Self { tfm };
        let klen = u32::try_from(key.len()).map_err(|_| EINVAL)?;
        // SAFETY: The transform is live; `key` is valid for `klen` bytes.
        to_result(unsafe { bindings::crypto_aead_setkey(this.tfm.as_ptr(), key.as_ptr(), klen) })?;
        // SAFETY: The transform is live.
        to_result(unsafe {
            bindings::crypto_aead_setauthsize(this.tfm.as_ptr(), AEAD_TAG_SIZE as u32)
        })?;
        // INVARIANT: keyed with a 16-byte tag.
        Ok(this)
    }

    /// Runs one request in place over `buf`: AAD (`assoclen` bytes), then `cryptlen` bytes to
    /// encrypt or decrypt (when decrypting, they include the tag; when encrypting, the tag is
    /// written after them, inside `buf`).
    fn request(
        &self,
        iv: &[u8; AEAD_IV_SIZE],
        assoclen: usize,
        cryptlen: usize,
        buf: &mut [u8],
        encrypt: bool,
    ) -> Result {
        // SAFETY: The transform is live.
        let req = unsafe { bindings::aead_request_alloc(self.tfm.as_ptr(), bindings::GFP_KERNEL) };
        let req = NonNull::new(req).ok_or(ENOMEM)?;
        let mut data = SecretBuf::from_slice(buf)?;
        let mut ivbuf = SecretBuf::from_slice(iv)?;
        let ret = (|| -> Result {
            // SAFETY: `data` is kmalloc'd and lives until the request is freed.
            let mut sg = unsafe { sg_one(&mut data.0)? };
            let cryptlen = u32::try_from(cryptlen).map_err(|_| EINVAL)?;
            let assoclen = u32::try_from(assoclen).map_err(|_| EINVAL)?;
            // SAFETY: `req` is a live request of this transform; `sg` and `ivbuf` are valid for
            // the call; no callback (synchronous transform).
            unsafe {
                bindings::aead_request_set_callback(req.as_ptr(), 0, None, core::ptr::null_mut());
                bindings::aead_request_set_crypt(
                    req.as_ptr(),
                    &mut sg,
                    &mut sg,
                    cryptlen,
                    ivbuf.0.as_mut_ptr(),
                );
                bindings::aead_request_set_ad(req.as_ptr(), assoclen);
                to_result(if encrypt {
                    bindings::crypto_aead_encrypt(req.as_ptr())
                } else {
                    bindings::crypto_aead_decrypt(req.as_ptr())
                })
            }
        })();
        // SAFETY: Allocated above, not used after.
        unsafe { bindings::aead_request_free(req.as_ptr()) };
        ret?;
        buf.copy_from_slice(&data.0);
        Ok(())
    }

    /// Encrypts in place: `buf` = AAD (`aad_len` bytes) || plaintext || room for the tag
    /// ([`AEAD_TAG_SIZE`] bytes at the end), which receives ciphertext and tag.
    pub(crate) fn seal(&self, iv: &[u8; AEAD_IV_SIZE], aad_len: usize, buf: &mut [u8]) -> Result {
        let plain = buf
            .len()
            .checked_sub(AEAD_TAG_SIZE)
            .and_then(|end| end.checked_sub(aad_len))
            .ok_or(EINVAL)?;
        self.request(iv, aad_len, plain, buf, true)
    }

    /// Decrypts in place: `buf` = AAD || ciphertext || tag; on success the ciphertext is
    /// replaced by the plaintext. `EBADMSG` if the tag does not verify.
    pub(crate) fn open(&self, iv: &[u8; AEAD_IV_SIZE], aad_len: usize, buf: &mut [u8]) -> Result {
        let cryptlen = buf
            .len()
            .checked_sub(aad_len)
            .filter(|&n| n >= AEAD_TAG_SIZE)
            .ok_or(EINVAL)?;
        self.request(iv, aad_len, cryptlen, buf, false)
    }
}

impl Drop for Aead {
    fn drop(&mut self) {
        // SAFETY: The transform is live and owned (type invariant); freeing it frees the key.
        unsafe { bindings::crypto_free_aead(self.tfm.as_ptr()) };
    }
}

#[kunit_tests(coco_session_crypto)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> KVec<u8> {
        let mut v = KVec::new();
        let b = s.as_bytes();
        let nib = |c: u8| -> u8 {
            match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => 0,
            }
        };
        let mut i = 0;
        while i + 1 < b.len() {
            let _ = v.push((nib(b[i]) << 4) | nib(b[i + 1]), GFP_KERNEL);
            i += 2;
        }
        v
    }

    #[test]
    fn hmac_rfc4231_case2() -> Result {
        let data = b"what do ya want for nothing?";
        for (alg, want) in [
            (HashAlg::Sha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (HashAlg::Sha384, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
            (HashAlg::Sha512, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        ] {
            let mut h = Hmac::new(alg)?;
            let mut out = [0u8; 64];
            // Two parts: the MAC covers their concatenation.
            let n = h.mac(b"Jefe", &[&data[..10], &data[10..]], &mut out)?;
            assert_eq!(&out[..n], &unhex(want)[..]);
        }
        Ok(())
    }

    #[test]
    fn hkdf_rfc5869_case1() -> Result {
        let mut h = Hmac::new(HashAlg::Sha256)?;
        let ikm = [0x0bu8; 22];
        let salt = unhex("000102030405060708090a0b0c");
        let info = unhex("f0f1f2f3f4f5f6f7f8f9");
        let mut prk = [0u8; 32];
        h.hkdf_extract(&salt, &ikm, &mut prk)?;
        assert_eq!(
            &prk[..],
            &unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")[..]
        );
        let mut okm = [0u8; 42];
        h.hkdf_expand(&prk, &info, &mut okm)?;
        assert_eq!(
            &okm[..],
            &unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")[..]
        );
        Ok(())
    }

    const GCM_KEY: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    const GCM_IV: &str = "cafebabefacedbaddecaf888";
    const GCM_P: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    const GCM_A: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

    fn aead_kat(alg: AeadAlg, want_ct_tag: &str) -> Result {
        // AES-128 takes the first half (GCM test case 4), the others all 32 bytes.
        let key = unhex(GCM_KEY);
        let a = Aead::new(alg, &key[..alg.key_size()])?;
        let mut iv = [0u8; AEAD_IV_SIZE];
        iv.copy_from_slice(&unhex(GCM_IV));
        let aad = unhex(GCM_A);
        let p = unhex(GCM_P);
        let mut buf = KVec::new();
        buf.extend_from_slice(&aad, GFP_KERNEL)?;
        buf.extend_from_slice(&p, GFP_KERNEL)?;
        buf.extend_from_slice(&[0u8; AEAD_TAG_SIZE], GFP_KERNEL)?;
        a.seal(&iv, aad.len(), &mut buf)?;
        assert_eq!(&buf[aad.len()..], &unhex(want_ct_tag)[..]);
        a.open(&iv, aad.len(), &mut buf)?;
        assert_eq!(&buf[aad.len()..aad.len() + p.len()], &p[..]);
        // A flipped bit anywhere (AAD, ciphertext, tag) fails with EBADMSG.
        for pos in [0, aad.len() + 3, buf.len() - 1] {
            let mut t = KVec::new();
            t.extend_from_slice(&buf, GFP_KERNEL)?;
            a.seal(&iv, aad.len(), &mut t)?;
            t[pos] ^= 1;
            assert_eq!(a.open(&iv, aad.len(), &mut t).err(), Some(EBADMSG));
        }
        Ok(())
    }

    #[test]
    fn aes128_gcm_kat() -> Result {
        aead_kat(
            AeadAlg::Aes128Gcm,
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e0915bc94fbc3221a5db94fae95ae7121a47",
        )
    }

    #[test]
    fn aes256_gcm_kat() -> Result {
        aead_kat(
            AeadAlg::Aes256Gcm,
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f66276fc6ece0f4e1768cddf8853bb2d551b",
        )
    }

    #[test]
    fn chacha20_poly1305_kat() -> Result {
        aead_kat(
            AeadAlg::ChaCha20Poly1305,
            "6834e787fe25a598328b7ac40c469ea40659e712826ba404c453a1559c1eedae8468004da4b2616a9198e9a6f91b7bea87ce25ff0d9b4bafa2de6df7bdb102e78896bad3810acd501d8ccf1e",
        )
    }

    fn ecdh_kat(curve: Curve, priv_a: &str, pub_a: &str, pub_b: &str, shared: &str) -> Result {
        let a = Ecdh::with_private(curve, &unhex(priv_a))?;
        let mut pa = [0u8; 96];
        let n = a.public_key(&mut pa)?;
        assert_eq!(&pa[..n], &unhex(pub_a)[..]);
        let mut s = [0u8; 48];
        let m = a.shared_secret(&unhex(pub_b), &mut s)?;
        assert_eq!(&s[..m], &unhex(shared)[..]);
        // A point that is not on the curve is refused.
        let mut bad = unhex(pub_b);
        bad[5] ^= 1;
        assert!(a.shared_secret(&bad, &mut s).is_err());
        // Two generated keys agree.
        let x = Ecdh::generate(curve)?;
        let y = Ecdh::generate(curve)?;
        let (mut px, mut py) = ([0u8; 96], [0u8; 96]);
        let nx = x.public_key(&mut px)?;
        let ny = y.public_key(&mut py)?;
        let (mut sx, mut sy) = ([0u8; 48], [0u8; 48]);
        x.shared_secret(&py[..ny], &mut sx)?;
        y.shared_secret(&px[..nx], &mut sy)?;
        assert_eq!(sx, sy);
        Ok(())
    }

    #[test]
    fn ecdh_p256_kat() -> Result {
        ecdh_kat(
            Curve::P256,
            "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
            "515c3d6eb9e396b904d3feca7f54fdcd0cc1e997bf375dca515ad0a6c3b4035f4536be3a50f318fbf9a5475902a221502bef0d57e08c53b2cc0a56f17d9f9354",
            "ac46d2953dbf5a008416ff406aac929c32a91ed62fd515d17d48282773a1497e2d850f4dfd02b06d69d3fd3592559d217d73ca5670b02fbb692e3cf95c076c37",
            "93eaa46278d41918ee9d0584193a97a2972ca24d4ff50db50c23cd71bdbc65bb",
        )
    }

    #[test]
    fn ecdh_p384_kat() -> Result {
        ecdh_kat(
            Curve::P384,
            "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30",
            "c76f2283dda95cd49b0ed9e733d2904474e37216f124e13d2c9ab4cf01021c49ad9cabb3d0b97499aef2f0ab313fa02826bc1f83451b5c8962a75caff73588d4400a6296436154fb343c393e91048a6c7bcbadc83cd8a5f26feae883156f92a1",
            "3ec2ade52324caf4a190c01bacc8280249844ab215eb937ed4645370562a38203a690369ac6fcf58c779e8949a85763b2c3deee99ae660555a538c4f3dae4fb6c80c25a36ad884409317fcb9124b4bab57eadc0a78c45b40062277e8eea7471e",
            "ba5fcbcd55d9056ac7fdb36653fb816e5077f22607620896dd8f820f2da53a9022a21043bf6e7fb0587f2692af14335f",
        )
    }
}
