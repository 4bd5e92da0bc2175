//! What an agent announces on its LAN, and reading a peer's announcement.
//!
//! DNS-SD (RFC 6763) service `_streembit._udp.local.`: the SRV record
//! gives the UDP port, the A/AAAA records the addresses, and the TXT
//! record these keys:
//!
//! | key  | value                                                       |
//! |------|-------------------------------------------------------------|
//! | `v`  | `1`, this format                                            |
//! | `k`  | the agent's public key, 64 lowercase hex digits             |
//! | `n`  | the network id, for the public network only                 |
//! | `nh` | for a private network: 16 hex digits of SHA-256 of `streembit-network:` and its id |
//!
//! Nothing in it is secret: the key is public by design, and a private
//! network's name is hashed so it is not broadcast in clear (a guessable
//! name can still be guessed: the hash hides it from a casual listing,
//! not from a dictionary). Admission never rests on an announcement: a
//! dial still proves the key in the TLS handshake, and a private network
//! still admits only members.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

use crate::identity::PublicKey;
use crate::wire::NetworkId;

/// The DNS-SD service type.
pub(crate) const SERVICE_TYPE: &str = "_streembit._udp.local.";
/// The TXT format's version.
const VERSION: &str = "1";
/// Addresses of one announcement kept at most (a host has a few).
pub(crate) const MAX_ADDRS: usize = 4;

/// How a network is named in an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum NetworkTag {
    /// The public network, in clear.
    Clear(String),
    /// A private network, hashed.
    Hashed(String),
}

impl NetworkTag {
    /// The tag this agent announces for `network`.
    pub(crate) fn of(network: &NetworkId) -> Self {
        if *network == NetworkId::public() {
            return Self::Clear(network.as_str().to_owned());
        }
        let digest = Sha256::new()
            .chain_update(b"streembit-network:")
            .chain_update(network.as_str().as_bytes())
            .finalize();
        Self::Hashed(hex::encode(&digest[..8]))
    }

    /// The TXT entry: (`n` or `nh`, value).
    fn txt(&self) -> (&'static str, &str) {
        match self {
            Self::Clear(name) => ("n", name),
            Self::Hashed(hash) => ("nh", hash),
        }
    }

    /// For people: the name, or `private network <hash>`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Clear(name) => name.clone(),
            Self::Hashed(hash) => format!("private network {hash}"),
        }
    }
}

/// A peer's announcement, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announcement {
    /// The key it claims (proven only by a handshake).
    pub key: PublicKey,
    /// Its network.
    pub network: NetworkTag,
    /// Where it listens: at most [`MAX_ADDRS`], IPv4 first.
    pub addrs: Vec<SocketAddr>,
}

/// Why an announcement was dropped unread (a metric label each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// No `v`, or a version we do not read.
    Version,
    /// No `k`, or not a public key.
    Key,
    /// Neither `n` nor `nh`, or a value that is not one.
    Network,
    /// Port 0, or no usable address (loopback, unspecified, multicast).
    Address,
}

impl Malformed {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Version => "malformed_version",
            Self::Key => "malformed_key",
            Self::Network => "malformed_network",
            Self::Address => "malformed_address",
        }
    }
}

/// The TXT properties this agent announces.
pub(crate) fn txt(key: &PublicKey, network: &NetworkId) -> Vec<(String, String)> {
    let tag = NetworkTag::of(network);
    let (n, v) = tag.txt();
    vec![
        ("v".to_owned(), VERSION.to_owned()),
        ("k".to_owned(), key.to_string()),
        (n.to_owned(), v.to_owned()),
    ]
}

/// Reads an announcement from its TXT properties (`get` answers a key's
/// value), SRV port and addresses.
pub(crate) fn parse<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    port: u16,
    ips: impl IntoIterator<Item = IpAddr>,
) -> Result<Announcement, Malformed> {
    if get("v") != Some(VERSION) {
        return Err(Malformed::Version);
    }
    let key = get("k")
        .filter(|k| k.len() == 64)
        .and_then(|k| k.parse::<PublicKey>().ok())
        .ok_or(Malformed::Key)?;
    let network = match (get("n"), get("nh")) {
        (Some(n), None) => NetworkTag::Clear(
            n.parse::<NetworkId>()
                .map_err(|_| Malformed::Network)?
                .as_str()
                .to_owned(),
        ),
        (None, Some(h)) if h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            NetworkTag::Hashed(h.to_ascii_lowercase())
        }
        _ => return Err(Malformed::Network),
    };
    if port == 0 {
        return Err(Malformed::Address);
    }
    // IPv4 first (a link-local IPv6 address needs a scope we would have to
    // carry), then the rest; sorted so the same host gives the same list.
    let usable: BTreeSet<(bool, IpAddr)> = ips
        .into_iter()
        .filter(|ip| !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast()))
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .map(|ip| (ip.is_ipv6(), ip))
        .collect();
    let addrs: Vec<SocketAddr> = usable
        .into_iter()
        .take(MAX_ADDRS)
        .map(|(_, ip)| SocketAddr::new(ip, port))
        .collect();
    if addrs.is_empty() {
        return Err(Malformed::Address);
    }
    Ok(Announcement {
        key,
        network,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;
    use std::collections::HashMap;

    fn read(props: &[(&str, &str)], port: u16, ips: &[&str]) -> Result<Announcement, Malformed> {
        let map: HashMap<String, String> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(
            |k| map.get(k).map(String::as_str),
            port,
            ips.iter().filter_map(|i| i.parse().ok()),
        )
    }

    #[test]
    fn an_announcement_reads_back() {
        let key = Keypair::from_seed(&[7; 32]).public();
        for network in ["public", "building-7"] {
            let id: NetworkId = network.parse().expect("network");
            let props = txt(&key, &id);
            let borrowed: Vec<(&str, &str)> = props
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let a = read(&borrowed, 7470, &["fe80::1", "10.0.0.2", "2001:db8::2"])
                .expect("announcement");
            assert_eq!(a.key, key);
            assert_eq!(a.network, NetworkTag::of(&id));
            assert_eq!(
                a.addrs,
                vec![
                    "10.0.0.2:7470".parse().expect("addr"),
                    "[2001:db8::2]:7470".parse().expect("addr")
                ]
            );
        }
        // The private name is not in the announcement.
        let props = txt(&key, &"building-7".parse().expect("network"));
        assert!(props.iter().all(|(_, v)| !v.contains("building")));
    }

    #[test]
    fn malformed_announcements_are_named() {
        let key = Keypair::from_seed(&[7; 32]).public().to_string();
        let ok = [("v", "1"), ("k", key.as_str()), ("n", "public")];
        assert!(read(&ok, 7470, &["10.0.0.2"]).is_ok());
        type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a [&'a str], Malformed);
        let cases: [Case; 8] = [
            (&ok[1..], 7470, &["10.0.0.2"], Malformed::Version),
            (
                &[("v", "2"), ok[1], ok[2]],
                7470,
                &["10.0.0.2"],
                Malformed::Version,
            ),
            (&[ok[0], ok[2]], 7470, &["10.0.0.2"], Malformed::Key),
            (
                &[ok[0], ("k", "zz"), ok[2]],
                7470,
                &["10.0.0.2"],
                Malformed::Key,
            ),
            (&ok[..2], 7470, &["10.0.0.2"], Malformed::Network),
            (
                &[ok[0], ok[1], ok[2], ("nh", "00")],
                7470,
                &["10.0.0.2"],
                Malformed::Network,
            ),
            (&ok, 0, &["10.0.0.2"], Malformed::Address),
            (
                &ok,
                7470,
                &["127.0.0.1", "fe80::1", "0.0.0.0"],
                Malformed::Address,
            ),
        ];
        for (props, port, ips, why) in cases {
            assert_eq!(read(props, port, ips), Err(why), "{props:?} {port} {ips:?}");
        }
    }

    #[test]
    fn many_addresses_are_capped() {
        let key = Keypair::from_seed(&[7; 32]).public().to_string();
        let ok = [("v", "1"), ("k", key.as_str()), ("n", "public")];
        let ips: Vec<String> = (1..=50).map(|i| format!("10.0.0.{i}")).collect();
        let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
        let a = read(&ok, 7470, &ips).expect("announcement");
        assert_eq!(a.addrs.len(), MAX_ADDRS);
    }
}
