//! Test helpers: keys, contacts, mock verifiers, and a two-node harness.
//!
//! The many-node harness is [`Net`](crate::dht::sim::Net), re-exported here
//! so that core tests and the simulator share one driver.

use std::time::Duration;

pub(super) use crate::dht::sim::{sign_record, SimRng, SimVerifier};
use crate::dht::{
    Action, Addrs, Config, Contact, Dht, Message, RecordError, RecordVerifier, Time, VerifiedRecord,
};
use crate::identity::{Keypair, PublicKey};

/// The key pair of test participant `i`.
pub(super) fn keypair(i: u32) -> Keypair {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 0xd7;
    Keypair::from_seed(&seed)
}

pub(super) fn key(i: u32) -> PublicKey {
    keypair(i).public()
}

pub(super) fn contact(i: u32) -> Contact {
    Contact::from_verified(&key(i), Addrs::empty())
}

/// A verifier that rejects every record.
pub(super) struct RejectsAll;

impl RecordVerifier for RejectsAll {
    fn verify(&mut self, _: &[u8], _: Time) -> Result<VerifiedRecord, RecordError> {
        Err(RecordError::BadSignature)
    }
}

/// A fresh core for participant `i`.
pub(super) fn dht(i: u32, cfg: Config) -> Dht {
    Dht::new(cfg, &key(i), Addrs::empty(), &mut SimRng::new(u64::from(i)))
}

/// Drains every action of `d`.
pub(super) fn sends(d: &mut Dht) -> Vec<(Contact, Message)> {
    let mut out = Vec::new();
    while let Some(a) = d.poll_action() {
        let Action::Send { to, message } = a;
        out.push((to, message));
    }
    out
}

/// A record signed by participant `i`.
pub(super) fn record(i: u32, seq: u64, issued: Time, ttl: Duration) -> Vec<u8> {
    sign_record(&keypair(i), seq, issued, issued + ttl, 8)
}
