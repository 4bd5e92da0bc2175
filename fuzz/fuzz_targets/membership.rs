//! What a peer can present or pass on about membership (issue 18):
//! credentials in its certificate chain and revocation lists. Every input
//! is decoded or refused without panicking, and what decodes signs and
//! decodes back to the same statement.
//!
//! Input: the first byte picks the case:
//! - 0: a credential's bytes; 1: a revocation list's bytes;
//! - 2: a certificate chain (entries split at 0xff 0xfe) put to a private
//!   network's admission, then as a revocation list to it;
//! - else: the rest, read as 32-byte keys and a position, makes a valid
//!   signed list and credential, then flips one byte at that position:
//!   the valid ones open, the flipped ones never open as something else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streembit_agent::identity::{Keypair, PublicKey};
use streembit_agent::internals::transport::{Authority, Membership};
use streembit_agent::wire::membership::{Credential, Revocations, Role};
use streembit_agent::wire::UnixMillis;

fuzz_target!(|data: &[u8]| {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    let admin = Keypair::from_seed(&[7; 32]);
    match which {
        0 => {
            if let Ok((c, _)) = Credential::open(rest) {
                let again = Credential::open(&c.sign(&[&admin]));
                assert_eq!(again, Ok((c, vec![admin.public()])));
            }
        }
        1 => {
            if let Ok((l, _)) = Revocations::open(rest) {
                let again = Revocations::open(&l.sign(&[&admin]));
                assert_eq!(again, Ok((l, vec![admin.public()])));
            }
        }
        2 => {
            let network = "acme".parse().expect("network id");
            let authority = Authority::new(vec![admin.public()], 1).expect("authority");
            let gate = Membership::private(&network, [], Some(authority));
            let chain: Vec<&[u8]> = split(rest).collect();
            let leaf = Keypair::from_seed(&[9; 32]).public();
            let _ = gate.admit_handshake(&leaf, &chain, UnixMillis(1_000));
            let _ = gate.admits(&leaf, UnixMillis(1_000));
            let _ = gate.apply_revocations(rest);
        }
        _ => {
            let keys: Vec<PublicKey> = rest
                .chunks_exact(32)
                .filter_map(|c| PublicKey::from_bytes(c).ok())
                .take(64)
                .collect();
            let list = Revocations {
                network: "acme".into(),
                seq: rest.len() as u64,
                issued: UnixMillis(5),
                revoked: keys.iter().copied().collect(),
            };
            let signed = list.sign(&[&admin]);
            assert_eq!(Revocations::open(&signed), Ok((list, vec![admin.public()])));
            let credential = Credential {
                network: "acme".into(),
                subject: keys.first().copied().unwrap_or(admin.public()),
                role: Role::Gateway,
                issued: UnixMillis(1),
                expires: (rest.len() % 2 == 0).then_some(UnixMillis(9)),
                serial: 3,
            };
            let cred = credential.sign(&[&admin]);
            assert_eq!(Credential::open(&cred), Ok((credential, vec![admin.public()])));
            let at = rest.first().map_or(0, |b| *b as usize);
            for mut bytes in [signed, cred] {
                let i = at % bytes.len();
                bytes[i] ^= rest.get(1).copied().unwrap_or(1).max(1);
                // A flipped byte never yields a statement signed by the admin.
                if let Ok((_, signers)) = Credential::open(&bytes) {
                    assert!(!signers.contains(&admin.public()));
                }
                if let Ok((_, signers)) = Revocations::open(&bytes) {
                    assert!(!signers.contains(&admin.public()));
                }
            }
        }
    }
});

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.windows(2).position(|w| w == [0xff, 0xfe]) {
            Some(i) => {
                let (head, tail) = rest.split_at(i);
                rest = &tail[2..];
                Some(head)
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}
