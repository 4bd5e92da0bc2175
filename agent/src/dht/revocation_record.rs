//! The DHT's copy of a private network's revocation list: one record for
//! the whole network, stored under SHA-256(`streembit-revocations:` + the
//! network id), so a member that was away finds the newest list with one
//! lookup, whoever is online.
//!
//! The record is a `revocation_record` envelope (COSE_Sign1, broadcast
//! audience) signed by the member that publishes it, whose payload is the
//! admins' signed list as is (docs/wire.md, "Membership"). Any member may
//! publish it; what makes it worth keeping is the list inside, which the
//! node checks against the network's admin keys ([`ListCheck`], given by
//! the layer that knows them) before the store takes it. The record's
//! sequence is the list's, so a newer list replaces an older one at every
//! holder and an older never replaces a newer. It lives [`TTL`] from its
//! envelope's timestamp and is republished by its publishers.
//!
//! A record holds at most [`super::MAX_RECORD_WIRE_BYTES`]: a list of
//! about 90 revoked keys. A longer list is passed on by the exchange on
//! connect alone (`node/revocation_sync.rs`).

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::identity::{Keypair, NodeId};
use crate::wire::{self, Audience, Kind, NetworkId, UnixMillis, WireError};

/// How long the record lives after its publisher signed it.
pub(crate) const TTL: Duration = Duration::from_secs(24 * 3600);

/// Checks a revocation list against the network's admins: its sequence
/// when enough of them signed it for this network, `None` otherwise.
pub(crate) type ListCheck = Arc<dyn Fn(&[u8]) -> Option<u64> + Send + Sync>;

/// The key the network's revocation record is stored under.
pub(crate) fn revocations_key(network: &NetworkId) -> NodeId {
    let digest = Sha256::new()
        .chain_update(b"streembit-revocations:")
        .chain_update(network.as_str().as_bytes())
        .finalize();
    NodeId(digest.into())
}

/// Seals `list` (the admins' signed list) as the network's revocation
/// record, published by `key`.
pub(crate) fn seal(
    key: &Keypair,
    network: &NetworkId,
    list: &[u8],
    now: UnixMillis,
    nonce: u64,
) -> Result<Vec<u8>, WireError> {
    wire::seal(
        key,
        network,
        Kind::RevocationRecord,
        Audience::Anyone,
        list,
        now,
        nonce,
    )
}
