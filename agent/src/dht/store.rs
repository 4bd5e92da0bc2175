//! The record store: records this node keeps for others, with hard limits.
//!
//! Everything here was sent by remote peers, so everything is bounded:
//! the number of records, the records per publishing peer (the peer that
//! sent the STORE), the bytes per record and the bytes in all. A STORE
//! beyond any limit is refused and counted; nothing is evicted to make
//! room, so a flood cannot push out records already held.
//!
//! Device records a gateway stores for its own devices (the record names
//! it as the gateway and carries its counter-signature) are charged to a
//! separate, larger budget of that gateway's, so a gateway of a thousand
//! devices has every one findable, while any one key still parks at most
//! [`DEFAULT_MAX_PER_PUBLISHER`] records of others plus
//! [`DEFAULT_MAX_DEVICES_PER_GATEWAY`] of its own devices.

use std::collections::BTreeMap;

use crate::identity::NodeId;

use super::message::StoreRefusal;
use super::record::VerifiedRecord;
use super::timer::Time;

/// Records one peer may have us hold by default, beyond its own devices'.
pub const DEFAULT_MAX_PER_PUBLISHER: usize = 256;
/// Device records a gateway may have us hold for the devices it hosts.
/// Issue 17: with devices charged to the publisher's 256, a gateway of
/// 1,000 devices had 743 unfindable.
pub(crate) const DEFAULT_MAX_DEVICES_PER_GATEWAY: usize = 2048;

/// Limits of the record store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreConfig {
    /// Records held at most.
    pub max_records: usize,
    /// Records held at most per publishing peer, its own devices' aside.
    pub max_per_publisher: usize,
    /// Device records held at most per gateway, for the devices it hosts
    /// and stores itself: the devices one gateway can make findable.
    pub max_devices_per_gateway: usize,
    /// Largest record accepted, in bytes.
    pub max_record_bytes: usize,
    /// Bytes of record data held at most.
    pub max_total_bytes: usize,
    /// Refuse a STORE for a key this node is not responsible for: when its
    /// routing table knows k or more nodes strictly closer to the key than
    /// itself. Without it, any peer could park up to its quota of records
    /// under keys no lookup ever asks this node for. Checked by the `Dht`
    /// (the store does not see the table); off only where a test measures
    /// the quotas alone.
    pub closest_only: bool,
}

impl Default for StoreConfig {
    /// Sized for a Raspberry-Pi-class gateway: at most 8 MiB of records
    /// (a few gateways of a thousand devices each, and their peers).
    fn default() -> Self {
        Self {
            max_records: 8192,
            max_per_publisher: DEFAULT_MAX_PER_PUBLISHER,
            max_devices_per_gateway: DEFAULT_MAX_DEVICES_PER_GATEWAY,
            max_record_bytes: 1024,
            max_total_bytes: 8 << 20,
            closest_only: true,
        }
    }
}

/// Whose quota a record is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Budget {
    /// The peer that sent the STORE.
    Publisher(NodeId),
    /// A gateway, for a device it hosts and stored itself.
    Devices(NodeId),
}

#[derive(Clone, Debug)]
struct Stored {
    bytes: Box<[u8]>,
    seq: u64,
    expires: Time,
    charged: Budget,
}

/// What an accepted STORE did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Inserted {
    /// A new key.
    New,
    /// Replaced a lower sequence.
    Replaced,
    /// Same sequence as held: nothing changed.
    Unchanged,
}

/// Bounded map from record key to record bytes.
#[derive(Clone, Debug, Default)]
pub(crate) struct RecordStore {
    cfg: StoreConfig,
    records: BTreeMap<NodeId, Stored>,
    per_publisher: BTreeMap<Budget, usize>,
    total_bytes: usize,
}

impl RecordStore {
    /// An empty store with these limits.
    pub(crate) fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    #[cfg(any(test, feature = "sim"))]
    /// Replaces the limits; records already held stay.
    pub(crate) fn set_config(&mut self, cfg: StoreConfig) {
        self.cfg = cfg;
    }

    /// The limits.
    pub(crate) fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Keeps `bytes` (verified as `rec`) sent by `publisher`, or says why
    /// not.
    pub(crate) fn insert(
        &mut self,
        rec: &VerifiedRecord,
        bytes: &[u8],
        publisher: NodeId,
    ) -> Result<Inserted, StoreRefusal> {
        if bytes.len() > self.cfg.max_record_bytes {
            return Err(StoreRefusal::TooLarge);
        }
        let key = rec.key();
        if let Some(old) = self.records.get_mut(&key) {
            if rec.seq < old.seq {
                return Err(StoreRefusal::Stale);
            }
            if rec.seq == old.seq {
                return Ok(Inserted::Unchanged);
            }
            let grown = bytes.len().saturating_sub(old.bytes.len());
            if self.total_bytes + grown > self.cfg.max_total_bytes {
                return Err(StoreRefusal::Full);
            }
            // The slot stays charged to whoever first filled it: replacing
            // needs a newer record signed by the owner, which no flooder has.
            self.total_bytes = self.total_bytes - old.bytes.len() + bytes.len();
            old.bytes = bytes.into();
            old.seq = rec.seq;
            old.expires = rec.expires;
            return Ok(Inserted::Replaced);
        }
        if self.records.len() >= self.cfg.max_records
            || self.total_bytes + bytes.len() > self.cfg.max_total_bytes
        {
            return Err(StoreRefusal::Full);
        }
        let (charged, quota) = match rec.host {
            Some(g) if g.node_id() == publisher => {
                (Budget::Devices(publisher), self.cfg.max_devices_per_gateway)
            }
            _ => (Budget::Publisher(publisher), self.cfg.max_per_publisher),
        };
        let held = self.per_publisher.get(&charged).copied().unwrap_or(0);
        if held >= quota {
            return Err(StoreRefusal::PublisherQuota);
        }
        self.per_publisher.insert(charged, held + 1);
        self.total_bytes += bytes.len();
        self.records.insert(
            key,
            Stored {
                bytes: bytes.into(),
                seq: rec.seq,
                expires: rec.expires,
                charged,
            },
        );
        Ok(Inserted::New)
    }

    /// The record under `key`, unless it expired.
    pub(crate) fn get(&self, key: &NodeId, now: Time) -> Option<&[u8]> {
        self.records
            .get(key)
            .filter(|r| r.expires > now)
            .map(|r| &*r.bytes)
    }

    #[cfg(test)]
    /// The sequence held under `key`.
    pub(crate) fn seq(&self, key: &NodeId) -> Option<u64> {
        self.records.get(key).map(|r| r.seq)
    }

    /// Drops expired records; returns how many.
    pub(crate) fn expire(&mut self, now: Time) -> usize {
        let dead: Vec<NodeId> = self
            .records
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in &dead {
            self.remove(k);
        }
        dead.len()
    }

    /// Drops the record under `key` (a member revoked); whether there was
    /// one.
    pub(crate) fn remove(&mut self, key: &NodeId) -> bool {
        let Some(r) = self.records.remove(key) else {
            return false;
        };
        self.total_bytes -= r.bytes.len();
        if let Some(n) = self.per_publisher.get_mut(&r.charged) {
            *n -= 1;
            if *n == 0 {
                self.per_publisher.remove(&r.charged);
            }
        }
        true
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<Time> {
        self.records.values().map(|r| r.expires).min()
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    #[cfg(test)]
    /// Whether no records are held.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    #[cfg(any(test, feature = "sim"))]
    /// Bytes of record data held (what `max_total_bytes` limits).
    pub(crate) fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    #[cfg(test)]
    /// Records held for `publisher`, its own devices' aside.
    pub(crate) fn held_for(&self, publisher: &NodeId) -> usize {
        self.per_publisher
            .get(&Budget::Publisher(*publisher))
            .copied()
            .unwrap_or(0)
    }

    #[cfg(any(test, feature = "sim"))]
    /// Estimated heap use, including map overhead.
    pub(crate) fn heap_bytes(&self) -> usize {
        // A BTreeMap entry costs about its key and value plus ~1/3 node slack.
        let entry = std::mem::size_of::<NodeId>() + std::mem::size_of::<Stored>();
        let pub_entry = std::mem::size_of::<Budget>() + std::mem::size_of::<usize>();
        self.total_bytes
            + (self.records.len() * entry + self.per_publisher.len() * pub_entry) * 4 / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    fn rec(seed: u8, seq: u64) -> VerifiedRecord {
        VerifiedRecord {
            owner: Keypair::from_seed(&[seed; 32]).public(),
            seq,
            issued: Time(0),
            expires: Time(1000),
            host: None,
            under: None,
        }
    }

    #[test]
    fn higher_seq_replaces_lower_is_refused_and_limits_hold() {
        let cfg = StoreConfig {
            max_records: 3,
            max_per_publisher: 2,
            max_devices_per_gateway: 2,
            max_record_bytes: 10,
            max_total_bytes: 25,
            closest_only: true,
        };
        let mut s = RecordStore::new(cfg);
        let p = NodeId([1; 32]);
        let q = NodeId([2; 32]);
        assert_eq!(s.insert(&rec(1, 5), &[0; 10], p), Ok(Inserted::New));
        assert_eq!(s.insert(&rec(1, 4), &[0; 10], p), Err(StoreRefusal::Stale));
        assert_eq!(s.insert(&rec(1, 5), &[0; 10], p), Ok(Inserted::Unchanged));
        assert_eq!(s.insert(&rec(1, 6), &[1; 8], q), Ok(Inserted::Replaced));
        assert_eq!(s.seq(&rec(1, 0).key()), Some(6));
        assert_eq!(
            s.insert(&rec(2, 1), &[0; 11], p),
            Err(StoreRefusal::TooLarge)
        );
        assert_eq!(s.insert(&rec(2, 1), &[0; 10], p), Ok(Inserted::New));
        assert_eq!(
            s.insert(&rec(3, 1), &[0; 5], p),
            Err(StoreRefusal::PublisherQuota)
        );
        assert_eq!(s.insert(&rec(3, 1), &[0; 8], q), Err(StoreRefusal::Full));
        assert_eq!(s.insert(&rec(3, 1), &[0; 7], q), Ok(Inserted::New));
        assert_eq!(s.insert(&rec(4, 1), &[], q), Err(StoreRefusal::Full));
        assert_eq!(s.total_bytes(), 25);
        assert_eq!(s.get(&rec(1, 0).key(), Time(999)), Some(&[1u8; 8][..]));
        assert_eq!(s.get(&rec(1, 0).key(), Time(1000)), None);
        assert_eq!(s.expire(Time(1000)), 3);
        assert_eq!((s.len(), s.total_bytes(), s.held_for(&p)), (0, 0, 0));
    }

    /// A gateway's own devices go to their own budget: past the publisher
    /// quota, yet still bounded; someone else's device records do not.
    #[test]
    fn a_gateways_devices_have_their_own_bounded_budget() {
        let cfg = StoreConfig {
            max_records: 100,
            max_per_publisher: 2,
            max_devices_per_gateway: 5,
            max_record_bytes: 10,
            max_total_bytes: 1000,
            closest_only: true,
        };
        let mut s = RecordStore::new(cfg);
        let gateway = Keypair::from_seed(&[200; 32]).public();
        let device = |seed: u8, host| VerifiedRecord {
            host: Some(host),
            ..rec(seed, 1)
        };
        // Its own record and one other's: the publisher quota.
        assert_eq!(
            s.insert(&rec(200, 1), &[0; 4], gateway.node_id()),
            Ok(Inserted::New)
        );
        for d in 1..=5 {
            assert_eq!(
                s.insert(&device(d, gateway), &[0; 4], gateway.node_id()),
                Ok(Inserted::New),
                "device {d}"
            );
        }
        assert_eq!(
            s.insert(&device(6, gateway), &[0; 4], gateway.node_id()),
            Err(StoreRefusal::PublisherQuota),
            "the device budget is bounded too"
        );
        // Device records naming another gateway are the sender's to pay.
        let other = Keypair::from_seed(&[201; 32]).public();
        assert_eq!(
            s.insert(&device(7, other), &[0; 4], gateway.node_id()),
            Ok(Inserted::New)
        );
        assert_eq!(
            s.insert(&device(8, other), &[0; 4], gateway.node_id()),
            Err(StoreRefusal::PublisherQuota)
        );
        assert_eq!(s.held_for(&gateway.node_id()), 2);
        assert_eq!(s.len(), 7);
    }
}
