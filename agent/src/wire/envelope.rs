//! Making and checking one COSE_Sign1 envelope.
//!
//! Layout (all in the protected header, nothing in the unprotected one):
//! `alg` = EdDSA (-8), `kid` = sender's 32-byte public key, and the private
//! labels of [`super::header`] for network, kind, timestamp and nonce. The
//! payload is embedded (never detached) and is itself one CBOR item.

use coset::cbor::Value;
use coset::iana::{self, EnumI64};
use coset::{
    CoseError, CoseSign1, CoseSign1Builder, HeaderBuilder, Label, RegisteredLabelWithPrivate,
    TaggedCborSerializable,
};

use super::header::{LABEL_KIND, LABEL_NETWORK, LABEL_NONCE, LABEL_TIMESTAMP};
use super::{Audience, Kind, NetworkId, UnixMillis, WireError, HARD_MAX_ENVELOPE_BYTES};
use crate::identity::batch::batchable;
use crate::identity::{Keypair, PublicKey};

/// A verified envelope: the signature checked out under [`Opened::sender`].
///
/// Only this module can build one, so code that takes an `Opened` cannot
/// have skipped the check (the rustls "proof type" habit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    sender: PublicKey,
    network: NetworkId,
    kind: Kind,
    timestamp: UnixMillis,
    nonce: u64,
    payload: Vec<u8>,
}

impl Opened {
    /// Who signed it.
    pub fn sender(&self) -> PublicKey {
        self.sender
    }
    /// The network it was signed for.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }
    /// What it is.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// When the sender says it was made.
    pub fn timestamp(&self) -> UnixMillis {
        self.timestamp
    }
    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
    /// The payload: one CBOR item.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// Takes the payload.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

/// Seals payloads for one network, handing out a fresh nonce per envelope.
///
/// One sealer may serve many keys (the gateway and its devices): nonces are
/// unique per process and start at a random point, so a restarted sender
/// does not reuse the nonces of its previous run.
#[derive(Debug)]
pub struct Sealer {
    network: NetworkId,
    next_nonce: u64,
}

impl Sealer {
    /// A sealer for `network` with a random starting nonce.
    pub fn new(network: NetworkId) -> Self {
        let mut seed = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        Self::with_nonce(network, u64::from_le_bytes(seed))
    }

    /// A sealer whose first nonce is `first` (simulations and tests).
    pub fn with_nonce(network: NetworkId, first: u64) -> Self {
        Self {
            network,
            next_nonce: first,
        }
    }

    /// The network this sealer signs for.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Seals `payload` (one CBOR item) as `kind` from `key` to `audience`.
    pub fn seal(
        &mut self,
        key: &Keypair,
        kind: Kind,
        audience: Audience,
        payload: &[u8],
        now: UnixMillis,
    ) -> Result<Vec<u8>, WireError> {
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        seal(key, &self.network, kind, audience, payload, now, nonce)
    }
}

/// Seals one envelope with an explicit nonce. Prefer [`Sealer`], which
/// never repeats a nonce.
pub fn seal(
    key: &Keypair,
    network: &NetworkId,
    kind: Kind,
    audience: Audience,
    payload: &[u8],
    now: UnixMillis,
    nonce: u64,
) -> Result<Vec<u8>, WireError> {
    check_audience(kind, &audience)?;
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(key.public().as_bytes().to_vec())
        .value(LABEL_NETWORK, Value::Text(network.as_str().to_owned()))
        .value(LABEL_KIND, Value::Text(kind.name().to_owned()))
        .value(LABEL_TIMESTAMP, Value::from(now.0))
        .value(LABEL_NONCE, Value::from(nonce))
        .build();
    let envelope = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload.to_vec())
        .create_signature(audience.aad(), |tbs| key.sign(tbs).to_vec())
        .build();
    let bytes = envelope
        .to_tagged_vec()
        .map_err(|e| WireError::Encode(e.to_string()))?;
    if bytes.len() > HARD_MAX_ENVELOPE_BYTES {
        return Err(WireError::Oversize {
            len: bytes.len(),
            max: HARD_MAX_ENVELOPE_BYTES,
        });
    }
    Ok(bytes)
}

fn check_audience(kind: Kind, audience: &Audience) -> Result<(), WireError> {
    match (kind.is_broadcast(), audience) {
        (true, Audience::Anyone) | (false, Audience::Node(_)) => Ok(()),
        (true, Audience::Node(_)) => Err(WireError::WrongAudience {
            kind,
            expected: "for anyone (no recipient)",
        }),
        (false, Audience::Anyone) => Err(WireError::WrongAudience {
            kind,
            expected: "addressed to a recipient",
        }),
    }
}

/// Decodes `bytes` and checks the signature; nothing about time, replay or
/// network. `max_len` is checked before any decoding. `recipient` is the
/// audience for point-to-point kinds (ignored for broadcast kinds; a
/// point-to-point kind without one is refused).
///
/// This is the building block of [`super::Opener`] and of the CLI's
/// `verify`; a receiver of live traffic wants the opener.
pub fn verify_signature(
    bytes: &[u8],
    max_len: usize,
    recipient: Option<&Audience>,
) -> Result<Opened, WireError> {
    let (envelope, opened) = decode(bytes, max_len)?;
    let audience = if opened.kind.is_broadcast() {
        Audience::Anyone
    } else {
        match recipient {
            Some(a @ Audience::Node(_)) => *a,
            _ => {
                return Err(WireError::WrongAudience {
                    kind: opened.kind,
                    expected: "addressed to a recipient (give the recipient's key)",
                })
            }
        }
    };
    check_signature(&envelope, &opened.sender, &audience)?;
    Ok(opened)
}

/// Checks a stored, published envelope (a DHT record, a kept reading): its
/// signature, that it is for `network` and is a broadcast kind. No
/// freshness or replay check, since such envelopes are served many times.
pub fn open_published(
    bytes: &[u8],
    network: &NetworkId,
    max_len: usize,
) -> Result<Opened, WireError> {
    let (envelope, opened) = decode(bytes, max_len)?;
    check_network(&opened, network)?;
    check_audience(opened.kind, &Audience::Anyone)?;
    check_signature(&envelope, &opened.sender, &Audience::Anyone)?;
    Ok(opened)
}

/// [`open_published`] for a burst of envelopes, with one Ed25519 batch
/// verification for all of them (about half the cost of one by one, see
/// the README). Returns one result per envelope, in order.
///
/// Batch verification checks the cofactored equation and so is not bit for
/// bit the strict single check: a signer could craft a signature of its own
/// that passes here and fails there, though nobody can pass a signature off
/// as someone else's. Small-order keys and large `s` are checked the
/// strict way instead of in the batch. If the batch fails, each
/// envelope is checked on its own, so one bad envelope costs only itself.
pub fn open_published_batch(
    envelopes: &[&[u8]],
    network: &NetworkId,
    max_len: usize,
) -> Vec<Result<Opened, WireError>> {
    let mut decoded = Vec::with_capacity(envelopes.len());
    let mut messages = Vec::with_capacity(envelopes.len());
    let mut signatures = Vec::with_capacity(envelopes.len());
    let mut keys = Vec::with_capacity(envelopes.len());
    let mut results: Vec<Result<Opened, WireError>> = Vec::with_capacity(envelopes.len());
    for bytes in envelopes {
        let checked = decode(bytes, max_len).and_then(|(envelope, opened)| {
            check_network(&opened, network)?;
            check_audience(opened.kind, &Audience::Anyone)?;
            let sig = ed25519_dalek::Signature::from_slice(&envelope.signature)
                .map_err(|_| WireError::BadSignature)?;
            // The batch takes only what the strict check would judge the
            // same way; anything else goes the strict way on its own.
            let plain = batchable(&opened.sender, &sig.to_bytes());
            Ok((envelope, opened, sig, plain))
        });
        match checked {
            Ok((_, _, _, false)) => results.push(open_published(bytes, network, max_len)),
            Ok((envelope, opened, sig, true)) => {
                messages.push(envelope.tbs_data(Audience::Anyone.aad()));
                signatures.push(sig);
                keys.push(*opened.sender.verifying_key());
                decoded.push(results.len());
                results.push(Ok(opened));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_err() {
        for i in decoded {
            results[i] = open_published(envelopes[i], network, max_len);
        }
    }
    results
}

/// The kind and payload of an envelope, **unverified**: only for routing
/// a frame to the layer that will open it (which checks everything).
pub fn peek_unverified(bytes: &[u8], max_len: usize) -> Option<(Kind, Vec<u8>)> {
    decode(bytes, max_len)
        .ok()
        .map(|(_, opened)| (opened.kind, opened.payload))
}

pub(super) fn check_network(opened: &Opened, network: &NetworkId) -> Result<(), WireError> {
    if &opened.network == network {
        Ok(())
    } else {
        Err(WireError::WrongNetwork {
            expected: network.to_string(),
            got: opened.network.to_string(),
        })
    }
}

pub(super) fn check_signature(
    envelope: &CoseSign1,
    sender: &PublicKey,
    audience: &Audience,
) -> Result<(), WireError> {
    envelope.verify_signature(audience.aad(), |sig, tbs| {
        if sender.verify(tbs, sig) {
            Ok(())
        } else {
            Err(WireError::BadSignature)
        }
    })
}

/// Size cap, CBOR decoding and header parsing. The returned `Opened` is not
/// yet verified; callers must run [`check_signature`] before handing it out.
pub(super) fn decode(bytes: &[u8], max_len: usize) -> Result<(CoseSign1, Opened), WireError> {
    if bytes.len() > max_len {
        return Err(WireError::Oversize {
            len: bytes.len(),
            max: max_len,
        });
    }
    let envelope = CoseSign1::from_tagged_slice(bytes).map_err(|e| match e {
        CoseError::DuplicateMapKey => {
            WireError::DuplicateHeader("(label repeated in a map)".into())
        }
        other => WireError::Malformed(other.to_string()),
    })?;
    let opened = parse_headers(&envelope)?;
    Ok((envelope, opened))
}

fn parse_headers(envelope: &CoseSign1) -> Result<Opened, WireError> {
    let protected = &envelope.protected.header;
    let unprotected = &envelope.unprotected;

    // Everything that matters is signed; the same label in the unsigned
    // bucket is at best confusing and at worst an attack on a lax verifier.
    if unprotected.alg.is_some() {
        return Err(WireError::DuplicateHeader("alg (in unprotected)".into()));
    }
    if !unprotected.key_id.is_empty() {
        return Err(WireError::DuplicateHeader("kid (in unprotected)".into()));
    }
    for (label, _) in &unprotected.rest {
        if let Label::Int(l @ (LABEL_NETWORK | LABEL_KIND | LABEL_TIMESTAMP | LABEL_NONCE)) = label
        {
            return Err(WireError::DuplicateHeader(format!(
                "{} (in unprotected)",
                label_name(*l)
            )));
        }
    }

    match &protected.alg {
        None => return Err(WireError::MissingHeader("alg")),
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA)) => {}
        Some(RegisteredLabelWithPrivate::Assigned(a)) => {
            return Err(WireError::WrongAlg(a.to_i64().to_string()))
        }
        Some(RegisteredLabelWithPrivate::PrivateUse(a)) => {
            return Err(WireError::WrongAlg(a.to_string()))
        }
        Some(RegisteredLabelWithPrivate::Text(a)) => return Err(WireError::WrongAlg(a.clone())),
    }
    if protected.key_id.is_empty() {
        return Err(WireError::MissingHeader("kid"));
    }
    let sender = PublicKey::from_bytes(&protected.key_id).map_err(|_| WireError::BadSenderKey)?;

    let mut network = None;
    let mut kind = None;
    let mut timestamp = None;
    let mut nonce = None;
    for (label, value) in &protected.rest {
        let Label::Int(l) = label else { continue };
        let slot = match *l {
            LABEL_NETWORK => &mut network,
            LABEL_KIND => &mut kind,
            LABEL_TIMESTAMP => &mut timestamp,
            LABEL_NONCE => &mut nonce,
            _ => continue,
        };
        // coset refuses repeated labels while decoding; keep the check here
        // too so a future decoder change cannot silently take the last one.
        if slot.replace(value).is_some() {
            return Err(WireError::DuplicateHeader(label_name(*l).into()));
        }
    }

    let network = text(network, "network")?;
    let network = network
        .parse::<NetworkId>()
        .map_err(|reason| WireError::BadHeader {
            header: "network",
            reason,
        })?;
    let kind = text(kind, "kind")?;
    let kind = kind.parse::<Kind>()?;
    let timestamp = UnixMillis(uint(timestamp, "timestamp")?);
    let nonce = uint(nonce, "nonce")?;
    let payload = envelope
        .payload
        .clone()
        .ok_or_else(|| WireError::Malformed("detached payload (nil) is not allowed".into()))?;

    Ok(Opened {
        sender,
        network,
        kind,
        timestamp,
        nonce,
        payload,
    })
}

fn label_name(label: i64) -> &'static str {
    match label {
        LABEL_NETWORK => "network",
        LABEL_KIND => "kind",
        LABEL_TIMESTAMP => "timestamp",
        LABEL_NONCE => "nonce",
        _ => "unknown",
    }
}

fn text<'a>(v: Option<&'a Value>, header: &'static str) -> Result<&'a str, WireError> {
    match v {
        None => Err(WireError::MissingHeader(header)),
        Some(Value::Text(s)) => Ok(s),
        Some(_) => Err(WireError::BadHeader {
            header,
            reason: "expected a text string".into(),
        }),
    }
}

fn uint(v: Option<&Value>, header: &'static str) -> Result<u64, WireError> {
    match v {
        None => Err(WireError::MissingHeader(header)),
        Some(Value::Integer(i)) => u64::try_from(*i).map_err(|_| WireError::BadHeader {
            header,
            reason: "expected an unsigned integer below 2^64".into(),
        }),
        Some(_) => Err(WireError::BadHeader {
            header,
            reason: "expected an unsigned integer".into(),
        }),
    }
}
