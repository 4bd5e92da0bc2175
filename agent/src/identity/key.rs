//! Ed25519 key pairs, public keys and node ids.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::IdentityError;

/// A participant's public key: its identity on the network.
///
/// The text form is exactly 64 lowercase hex characters. Parsing rejects
/// anything else (upper case included) so that one key has one spelling,
/// which matters when keys are compared as strings in allowlists and logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PartialOrd for PublicKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PublicKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl PublicKey {
    /// Length of the raw key in bytes.
    pub const LEN: usize = 32;

    /// Parses the raw 32-byte form, rejecting bytes that are not a valid
    /// curve point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let arr: &[u8; 32] = bytes.try_into().map_err(|_| IdentityError::BadPublicKey {
            input: shorten(&hex::encode(bytes)),
            reason: "expected 32 bytes",
        })?;
        VerifyingKey::from_bytes(arr)
            .map(Self)
            .map_err(|_| IdentityError::BadPublicKey {
                input: shorten(&hex::encode(bytes)),
                reason: "not a valid Ed25519 point",
            })
    }

    /// As [`Self::from_bytes`], but taken from `known` when one of them is
    /// this key: reading a point costs a square root (about 5 µs), and a
    /// handshake reads keys it mostly knows already (the admins', the
    /// peer's own).
    pub fn from_bytes_among(bytes: &[u8], known: &[PublicKey]) -> Result<Self, IdentityError> {
        match known.iter().find(|k| k.as_bytes()[..] == *bytes) {
            Some(k) => Ok(*k),
            None => Self::from_bytes(bytes),
        }
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// This key's position in the DHT keyspace.
    pub fn node_id(&self) -> NodeId {
        NodeId(Sha256::digest(self.as_bytes()).into())
    }

    /// Verifies an Ed25519 signature over `msg` (RFC 8032 strict: rejects
    /// small-order keys and non-canonical signatures, so one message has one
    /// valid signature per key).
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = Signature::from_slice(signature) else {
            return false;
        };
        self.0.verify_strict(msg, &sig).is_ok()
    }

    /// The dalek key, for batch verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl FromStr for PublicKey {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| IdentityError::BadPublicKey {
            input: shorten(s),
            reason,
        };
        if s.len() != 64 {
            return Err(bad("expected 64 hex characters"));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("expected lowercase hex characters 0-9, a-f"));
        }
        let bytes = hex::decode(s).map_err(|_| bad("expected hex"))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A 256-bit position in the DHT keyspace: SHA-256 of a public key.
///
/// Derived, never claimed: a node id is only ever computed from a key whose
/// signature was checked, so nobody can choose where they sit in the table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Kademlia XOR distance.
    pub fn distance(&self, other: &NodeId) -> [u8; 32] {
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        d
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &hex::encode(&self.0[..8]))
    }
}

/// An Ed25519 key pair.
///
/// The secret half is zeroized on drop (dalek's `ZeroizeOnDrop`) and never
/// printed: `Debug` shows only the public key. It can leave the process only
/// as PKCS#8 PEM through [`Keypair::to_pkcs8_pem`], into a buffer that is
/// itself zeroized.
pub struct Keypair {
    secret: SigningKey,
    public: PublicKey,
}

impl Keypair {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// A key from a 32-byte seed. For tests and simulations that need
    /// reproducible identities; real keys come from [`Keypair::generate`].
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_signing_key(SigningKey::from_bytes(seed))
    }

    fn from_signing_key(secret: SigningKey) -> Self {
        let public = PublicKey(secret.verifying_key());
        Self { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The public key's raw bytes, borrowed (for APIs that want `&[u8]`).
    pub fn public_ref_bytes(&self) -> &[u8] {
        self.public.as_bytes()
    }

    /// Shorthand for `self.public().node_id()`.
    pub fn node_id(&self) -> NodeId {
        self.public.node_id()
    }

    /// Signs `msg` (pure Ed25519, RFC 8032).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.secret.sign(msg).to_bytes()
    }

    /// PKCS#8 v1 PEM ("PRIVATE KEY"): the RFC 8410 `OneAsymmetricKey`
    /// with version 0 and no public key, the form stored on disk.
    ///
    /// dalek's own encoder writes v2 (version 1, the public key attached),
    /// which OpenSSL 3.0 (`openssl pkey`: "unsupported") and Python
    /// cryptography before 41 refuse; v1 is what every tool reads, and the
    /// public key follows from the secret anyway.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, IdentityError> {
        let v1 = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.secret.to_bytes(),
            public_key: None,
        };
        let pem = v1.to_pkcs8_pem(Default::default());
        // KeypairBytes clears its secret on drop only with ed25519's
        // `zeroize` feature, which dalek does not turn on.
        let mut v1 = v1;
        v1.secret_key.zeroize();
        pem.map_err(|e| IdentityError::BadKeyFile {
            path: Default::default(),
            reason: e.to_string(),
        })
    }

    /// Parses PKCS#8 PEM, v1 or v2 (v2's public key must match the
    /// secret). `path` only labels errors.
    pub fn from_pkcs8_pem(pem: &str, path: &std::path::Path) -> Result<Self, IdentityError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_signing_key)
            .map_err(|e| IdentityError::BadKeyFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Long inputs are cut in error messages so a pasted file does not flood
/// the terminal.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_among_known_ones_is_the_key_those_bytes_read_as() {
        let (a, b) = (
            Keypair::from_seed(&[1; 32]).public(),
            Keypair::from_seed(&[2; 32]).public(),
        );
        let among = |bytes: &[u8]| PublicKey::from_bytes_among(bytes, &[a]);
        assert_eq!(among(a.as_bytes()).ok(), Some(a));
        // Not known: read as usual.
        assert_eq!(among(b.as_bytes()).ok(), Some(b));
        // Bytes that are no key are refused, known keys or not.
        assert!(among(&a.as_bytes()[..31]).is_err());
        let not_a_point = (2u8..)
            .map(|y| {
                let mut bytes = [0; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| PublicKey::from_bytes(bytes).is_err())
            .expect("about half of all y are no point");
        assert!(among(&not_a_point).is_err());
    }

    #[test]
    fn public_key_text_round_trips_and_is_strict() {
        let k = Keypair::from_seed(&[7; 32]).public();
        let text = k.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<PublicKey>().ok(), Some(k));
        assert!(text.to_uppercase().parse::<PublicKey>().is_err());
        assert!(text[..63].parse::<PublicKey>().is_err());
        assert!(format!("{text}0").parse::<PublicKey>().is_err());
        assert!(format!("0x{}", &text[2..]).parse::<PublicKey>().is_err());
        let err = "zz"
            .repeat(32)
            .parse::<PublicKey>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("lowercase hex")));
    }

    #[test]
    fn node_id_is_sha256_of_key() {
        let k = Keypair::from_seed(&[1; 32]).public();
        let expect: [u8; 32] = Sha256::digest(k.as_bytes()).into();
        assert_eq!(k.node_id().0, expect);
    }

    #[test]
    fn debug_never_shows_secret() {
        let seed = [0x5a; 32];
        let kp = Keypair::from_seed(&seed);
        let dbg = format!("{kp:?}");
        assert!(dbg.contains("redacted"));
        assert!(!dbg.contains(&hex::encode(seed)));
        assert!(!dbg.contains("90, 90"), "raw seed bytes leaked: {dbg}");
    }

    /// RFC 8410, section 10.3: the v1 DER of an Ed25519 key is this
    /// 16-byte header and the 32-byte seed, nothing else.
    #[test]
    fn pem_is_pkcs8_v1_without_the_public_key() {
        let seed = [9u8; 32];
        let pem = Keypair::from_seed(&seed).to_pkcs8_pem().expect("encode");
        let (label, doc) = ed25519_dalek::pkcs8::SecretDocument::from_pem(&pem).expect("pem");
        assert_eq!(label, "PRIVATE KEY");
        let der = doc.as_bytes();
        let header = hex::decode("302e020100300506032b657004220420").expect("hex");
        assert_eq!(der.len(), 48, "{}", hex::encode(der));
        assert_eq!(der[..16], header[..]);
        assert_eq!(der[16..], seed[..]);
    }

    /// Keys written before v1 (PKCS#8 v2, public key attached) still load.
    #[test]
    fn pkcs8_v2_keys_still_load() {
        let kp = Keypair::from_seed(&[3; 32]);
        let v2 = kp.secret.to_pkcs8_pem(Default::default()).expect("v2");
        let (_, doc) = ed25519_dalek::pkcs8::SecretDocument::from_pem(&v2).expect("pem");
        assert_eq!(doc.as_bytes()[4], 1, "dalek's encoder no longer writes v2");
        let back = Keypair::from_pkcs8_pem(&v2, "v2.pem".as_ref()).expect("v2 loads");
        assert_eq!(back.public(), kp.public());
    }

    #[test]
    fn pem_round_trip_and_signature() {
        let kp = Keypair::generate();
        let pem = kp.to_pkcs8_pem().expect("encode");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = Keypair::from_pkcs8_pem(&pem, "x".as_ref()).expect("decode");
        assert_eq!(back.public(), kp.public());
        let sig = back.sign(b"hello");
        assert!(kp.public().verify(b"hello", &sig));
        assert!(!kp.public().verify(b"hellp", &sig));
        assert!(!kp.public().verify(b"hello", &sig[..63]));
    }
}
