//! The local API's contract: the JSON shapes the running agent answers
//! with and the CLI (or any script) decodes (`docs/api.md`).
//!
//! A leaf module: it names no other module of this crate, so the node and
//! the devices layer fill these shapes and the daemon and the CLI carry
//! them without any of them importing another's types (the way
//! quinn-proto keeps `EndpointEvent`/`ConnectionEvent` in `shared.rs`).
//! Keys travel as 64-hex text here, as on the wire of the API.
//!
//! What this module does not do: routes, HTTP or validation (the daemon's
//! `routes.rs` parses requests), and no behaviour beyond serde.
//!
//! Fields added over time carry `#[serde(default)]`, so a newer CLI still
//! reads an older agent's answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Network id.
    pub network: String,
    /// `public` or `private`.
    pub network_kind: String,
    /// This agent's public key.
    pub key: String,
    /// Its node id (SHA-256 of the key).
    pub node_id: String,
    /// UDP addresses it listens on.
    pub listen: Vec<String>,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Open QUIC connections.
    pub connections: usize,
    /// Contacts in the routing table.
    pub table_size: usize,
    /// Those contacts by how this agent first learned of them: `seed`
    /// (config), `dns` (`seeds_dns`), `mdns` (a LAN announcement), `dht`.
    #[serde(default)]
    pub table_by_source: std::collections::BTreeMap<String, usize>,
    /// Records stored for others.
    pub records_stored: usize,
    /// Hosted devices.
    pub devices: usize,
    /// `unknown`, `public` (a third peer dialed us back) or `private`
    /// (behind NAT: reached through relays).
    #[serde(default)]
    pub reachability: String,
    /// The addresses our records announce now (`relay:<key>@<ip:port>`
    /// for a relay).
    #[serde(default)]
    pub addrs: Vec<String>,
    /// Open connections and how they reach their peer.
    #[serde(default)]
    pub links: Vec<Link>,
    /// How far the network's time (the median of peers' answers) is from
    /// this agent's wall clock, in ms; positive: the local clock is behind.
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// Peers whose time answers that median is over.
    #[serde(default)]
    pub clock_peers: usize,
    /// Limits this agent is near, and clocks it is far from, in words an
    /// operator can act on (empty when all is well).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Past this share of a limit, `status` and `check-config` warn.
pub const NEAR_LIMIT: f64 = 0.8;

/// A warning when `used` is past [`NEAR_LIMIT`] of `limit`: `what` names
/// the thing counted, `fix` what to do.
pub fn near_limit(what: &str, used: usize, limit: usize, fix: &str) -> Option<String> {
    (limit > 0 && used as f64 >= NEAR_LIMIT * limit as f64)
        .then(|| format!("{what}: {used} of at most {limit}; {fix}"))
}

/// One open connection, in [`Status::links`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Link {
    /// The key its handshake proved (a node's or a device's).
    pub key: String,
    /// `direct` or `relayed`.
    pub path: String,
    /// The peer's UDP address (direct), or the relay's (relayed).
    pub addr: String,
    /// How this agent first learned of the peer: `seed`, `dns`, `mdns`
    /// or `dht`.
    #[serde(default)]
    pub learned: String,
}

/// Agents heard on the LAN, `GET /v1/discovered`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Discovered {
    /// Most recently heard first.
    pub agents: Vec<DiscoveredAgent>,
}

/// One agent heard on the LAN, in [`Discovered`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DiscoveredAgent {
    /// The key it announced (proven only once a handshake succeeds).
    pub key: String,
    /// Its network: the name of a public one, or `private network <hash>`.
    pub network: String,
    /// Whether it is on this agent's network (only those are dialed).
    pub same_network: bool,
    /// The addresses it announced.
    pub addrs: Vec<String>,
    /// Whether this agent has a connection to it now.
    pub connected: bool,
    /// Seconds since it was last heard.
    pub last_seen_s: u64,
}

/// One routing-table contact, `GET /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    /// Public key.
    pub key: String,
    /// Addresses it announced.
    pub addrs: Vec<String>,
    /// How this agent first learned of it: `seed`, `dns`, `mdns` or `dht`.
    #[serde(default)]
    pub learned: String,
}

/// A record found by `GET /v1/lookup/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LookupAnswer {
    /// The key looked up.
    pub key: String,
    /// `peer` or `device`.
    pub kind: String,
    /// Addresses in the record.
    pub addrs: Vec<String>,
    /// The record's sequence number.
    pub seq: u64,
    /// For a device record: the hosting gateway's key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway: Option<String>,
    /// Lookup rounds.
    pub rounds: u32,
    /// Messages sent by the lookup.
    pub messages: u32,
    /// Time inside the node from starting the lookup to its end, in
    /// microseconds (excludes the API round trip).
    #[serde(default)]
    pub elapsed_us: u64,
}

/// An API error body: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    /// What went wrong.
    pub error: String,
}

/// One reading, as the API shows it: a point of a hosted device on the
/// board (`GET /v1/devices`), a reading fetched from a device anywhere
/// (`GET /v1/read/{key}`), or one held in an inbox.
///
/// One shape for all three, because they are the same thing seen from
/// different places: the board's entry is the reading this gateway just
/// sealed, the others were verified with the device key on arrival.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadingView {
    /// The device's name at its gateway.
    #[serde(default)]
    pub device: String,
    /// The point.
    #[serde(default)]
    pub point: String,
    /// The value (absent when the reading carries an error).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<serde_json::Value>,
    /// Unit from the bridge file.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<String>,
    /// `good`, or `bad: <reason>`.
    pub quality: String,
    /// When it was read, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The device's reading sequence (0 for a reading that could not be
    /// sealed).
    #[serde(default)]
    pub seq: u64,
    /// The reading as a COSE_Sign1 envelope signed by the device's own key
    /// (hex), verifiable with the device key alone. Absent only on the
    /// board, for a reading that could not be sealed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cose: Option<String>,
}

impl ReadingView {
    /// The value with its unit, or why there is none, for people.
    pub fn shown(&self) -> String {
        match &self.value {
            Some(v) => format!("{v} {}", self.unit.as_deref().unwrap_or(""))
                .trim_end()
                .to_owned(),
            None => self.quality.clone(),
        }
    }
}

/// A hosted device, `GET /v1/devices`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    /// Name from the bridge file.
    pub name: String,
    /// The bridge file it is defined in.
    pub bridge: String,
    /// The device's own public key.
    pub key: String,
    /// `starting`, `online` or `offline: <reason>`.
    pub state: String,
    /// Last successful exchange, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_success_ms: Option<u64>,
    /// Latest reading per point.
    pub points: BTreeMap<String, ReadingView>,
}

/// `GET /v1/read/{key}`: a device's latest readings, each verified with
/// its key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReadAnswer {
    /// The device key.
    pub device: String,
    /// Its readings.
    pub readings: Vec<ReadingView>,
}

/// A subscription, `GET /v1/subscriptions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubscriptionInfo {
    /// The device key.
    pub device: String,
    /// Whether a stream to the device is open now.
    pub connected: bool,
    /// The last sequence received.
    pub last_seq: u64,
    /// Readings in the inbox.
    pub held: u64,
    /// Readings received since start.
    pub received: u64,
    /// Duplicates dropped since start (a reading the inbox holds already).
    pub duplicates: u64,
    /// Readings refused since start because their sequence is not above
    /// the inbox's last, yet they are not in the inbox: the gateway's
    /// sequence went back (it should not; see the gateway's log).
    #[serde(default)]
    pub behind: u64,
    /// Readings refused (bad signature, wrong signer) since start.
    pub rejected: u64,
    /// Readings dropped from the full inbox since start.
    pub dropped: u64,
    /// Why the last stream ended, if it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
}

/// One received reading, `GET /v1/subscriptions/{key}/readings`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InboxEntry {
    /// When it arrived here, ms since the Unix epoch.
    pub received_ms: u64,
    /// The reading, verified again with the device key as it is read.
    #[serde(flatten)]
    pub reading: ReadingView,
}

/// A clock offset (as in [`Status::clock_offset_ms`]) for people: "2 h 0 min behind", "12.3 s ahead of".
pub fn offset_text(offset_ms: i64) -> String {
    let side = if offset_ms >= 0 { "behind" } else { "ahead of" };
    let ms = offset_ms.unsigned_abs();
    let amount = if ms >= 3_600_000 {
        format!("{} h {} min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    } else if ms >= 60_000 {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    };
    format!("{amount} {side}")
}

/// What `streembit members` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersView {
    /// The network's id.
    pub network: String,
    /// Whether it is private.
    pub private: bool,
    /// Its admin keys.
    pub admins: Vec<String>,
    /// How many admins must sign.
    pub admin_threshold: usize,
    /// Sequence of the newest revocation list held (0: none).
    pub revocation_seq: u64,
    /// The keys it revokes.
    pub revoked: Vec<String>,
    /// Keys admitted by credential that this node remembers.
    pub admitted_by_credential: usize,
    /// This agent's own credential.
    pub credential: Option<CredentialView>,
    /// What the operator should act on (a credential about to expire).
    pub warnings: Vec<String>,
}

/// This agent's own credential, for `members` and `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CredentialView {
    /// `gateway` or `member`.
    pub role: String,
    /// The issuer's serial.
    pub serial: u64,
    /// When it was issued.
    pub issued_unix_ms: u64,
    /// When it ends, if it does.
    pub expires_unix_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_warn_from_eighty_percent() {
        assert_eq!(near_limit("records", 79, 100, "x"), None);
        assert_eq!(
            near_limit("records", 80, 100, "raise it").as_deref(),
            Some("records: 80 of at most 100; raise it")
        );
        assert_eq!(near_limit("records", 1, 0, "x"), None);
    }

    #[test]
    fn offsets_read_as_people_say_them() {
        assert_eq!(offset_text(7_200_000), "2 h 0 min behind");
        assert_eq!(offset_text(-600_000), "10 min 0 s ahead of");
        assert_eq!(offset_text(-12_345), "12.3 s ahead of");
    }

    /// The CLI reads answers of agents older than the shapes here.
    #[test]
    fn older_answers_still_decode() {
        let point = r#"{"value": 42.5, "unit": "W", "quality": "good", "timestamp_ms": 7}"#;
        let r: ReadingView = serde_json::from_str(point).expect("board entry of an older agent");
        assert_eq!((r.seq, r.cose.as_deref()), (0, None));
        assert_eq!(r.shown(), "42.5 W");
        let old =
            r#"{"key": "k", "kind": "peer", "addrs": [], "seq": 1, "rounds": 0, "messages": 0}"#;
        let a: LookupAnswer = serde_json::from_str(old).expect("lookup of an older agent");
        assert_eq!(a.elapsed_us, 0);
    }
}
