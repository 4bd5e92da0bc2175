//! The protected header: who signed, for which network, what, when, and
//! a nonce that makes the message unique.

use std::fmt;
use std::str::FromStr;

use crate::identity::NodeId;

/// Header label for the network id (tstr). Private-use range of RFC 9052
/// (integers below -65536), so no IANA label can ever collide.
pub const LABEL_NETWORK: i64 = -65537;
/// Header label for the message kind (tstr, one of [`Kind`]'s names).
pub const LABEL_KIND: i64 = -65538;
/// Header label for the timestamp (uint, ms since the Unix epoch).
pub const LABEL_TIMESTAMP: i64 = -65539;
/// Header label for the per-sender nonce (uint, 64 bits).
pub const LABEL_NONCE: i64 = -65540;

/// `external_aad` of messages meant for anyone (records, readings).
///
/// Point-to-point messages use the recipient's 32-byte node id instead; the
/// different length keeps the two from ever being confused.
pub const BROADCAST_AAD: &[u8] = b"streembit:anyone";

/// Milliseconds since the Unix epoch. Time is always passed in, never read
/// here, so tests and simulations run on virtual clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub u64);

/// A network's id: `public`, or the name of a private network.
///
/// It is signed into every envelope and carried in ALPN, so networks never
/// mix. Text of 1 to 32 characters from `a-z 0-9 . _ -`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(String);

impl NetworkId {
    /// The public network.
    pub fn public() -> Self {
        Self("public".to_owned())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NetworkId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid network id {:?}: use 1 to 32 of a-z, 0-9, '.', '_' and '-'",
                s.chars().take(40).collect::<String>()
            ))
        }
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkId({})", self.0)
    }
}

/// Who an envelope is for; decides its `external_aad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Anyone may verify it: `external_aad` = [`BROADCAST_AAD`].
    Anyone,
    /// Only this node: `external_aad` = its node id, so the message cannot
    /// be replayed to another node.
    Node(NodeId),
}

impl Audience {
    pub(crate) fn aad(&self) -> &[u8] {
        match self {
            Audience::Anyone => BROADCAST_AAD,
            Audience::Node(id) => id.as_bytes(),
        }
    }
}

macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $broadcast:literal; )*) => {
        /// What a message is. Each kind has a fixed audience: records and
        /// readings are for anyone, everything else is point-to-point.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Kind {
            $( $(#[$doc])* $variant, )*
        }

        impl Kind {
            /// Every kind, in wire-name order of the table in `docs/wire.md`.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The name carried on the wire.
            pub fn name(self) -> &'static str {
                match self { $(Kind::$variant => $name,)* }
            }

            /// Whether the kind is meant for anyone (`true`) or for one
            /// node (`false`).
            pub fn is_broadcast(self) -> bool {
                match self { $(Kind::$variant => $broadcast,)* }
            }
        }

        impl Kind {
            /// Whether envelopes of this kind are held to the freshness
            /// window and the replay window. Only the time exchange is
            /// not: a challenge makes its answer fresh, and a node whose
            /// clock is wrong must still be able to ask.
            pub fn freshness_checked(self) -> bool {
                !matches!(self, Kind::Time | Kind::TimeAnswer)
            }
        }

        impl FromStr for Kind {
            type Err = super::WireError;
            fn from_str(s: &str) -> Result<Self, super::WireError> {
                match s {
                    $($name => Ok(Kind::$variant),)*
                    other => Err(super::WireError::UnknownKind(other.chars().take(64).collect())),
                }
            }
        }
    };
}

kinds! {
    /// Liveness probe (DHT).
    Ping = "ping", false;
    /// Answer to a ping.
    Pong = "pong", false;
    /// Ask for the k closest contacts to an id.
    FindNode = "find_node", false;
    /// Contacts in answer to `find_node` / `find_value`.
    Nodes = "nodes", false;
    /// Ask for the record stored under an id.
    FindValue = "find_value", false;
    /// A record in answer to `find_value`.
    Value = "value", false;
    /// Ask a node to keep a record.
    Store = "store", false;
    /// Answer to `store`.
    Stored = "stored", false;
    /// A peer's self-certifying record: its addresses.
    PeerRecord = "peer_record", true;
    /// A device's self-certifying record: its gateway.
    DeviceRecord = "device_record", true;
    /// A device's signed reading.
    Reading = "reading", true;
    /// A command to a device.
    Command = "command", false;
    /// A device's answer to a command.
    CommandResult = "command_result", false;
    /// A signed refusal or failure.
    Error = "error", false;
    /// Ask for a device's readings as they are made, from a cursor on
    /// (also the subscriber's acknowledgement of what it has).
    Subscribe = "subscribe", false;
    /// Ask for a device's latest signed readings.
    Read = "read", false;
    /// A device's latest signed readings, in answer to `read`.
    Readings = "readings", false;
    /// A NAT-traversal request: observe, dial back, reserve or connect
    /// through a relay, a relayed session's announcement.
    Nat = "nat", false;
    /// The answer to a `nat` request.
    NatAnswer = "nat_answer", false;
    /// Ask a peer for its time, with a fresh challenge (docs/wire.md,
    /// "Time"). Exempt from the freshness and replay checks: it is how a
    /// node with a wrong clock learns the network's time.
    Time = "time", false;
    /// The answer to `time`: the peer's time, bound to the challenge.
    TimeAnswer = "time_answer", false;
    /// Offer of the sequence of the newest revocation list a node holds
    /// (private networks with admins); answered with a newer list, if any,
    /// as a bare signed statement (docs/wire.md, "Membership").
    Revocations = "revocations", false;
    /// The DHT's copy of a private network's revocation list, published by
    /// any member: the admins' signed list as the payload.
    RevocationRecord = "revocation_record", true;
    /// Free-form operator message (`streembit sign --kind note`), never
    /// acted on by the agent.
    Note = "note", true;
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>(), Ok(*k));
        }
        assert!("PING".parse::<Kind>().is_err());
    }

    #[test]
    fn network_ids_are_validated() {
        assert!("public".parse::<NetworkId>().is_ok());
        assert!("acme-hq.site_2".parse::<NetworkId>().is_ok());
        for bad in ["", "Public", "a b", "x/y", &"a".repeat(33)] {
            assert!(bad.parse::<NetworkId>().is_err(), "{bad}");
        }
    }
}
