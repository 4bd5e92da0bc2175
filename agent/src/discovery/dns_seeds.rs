//! Seeds from DNS: `seeds_dns = ["_streembit._udp.example.org"]` names
//! TXT records, each holding one seed as `<key>@host:port` (the strings of
//! one record are joined, as for SPF). An operator publishes the seed list
//! once in their zone instead of editing every box.
//!
//! Looked up at start and every [`REFRESH`]; a failed round is logged,
//! counted and retried sooner (from [`RETRY_FIRST`], doubling up to
//! [`REFRESH`]): a gateway often boots before its uplink. Never fatal.
//!
//! The query is one UDP exchange with each nameserver of
//! `/etc/resolv.conf` in turn, with a TCP retry when the answer is
//! truncated (a long seed list). The answer's size is capped before it
//! is parsed.
//!
//! What this module does not do: trust a record more than a configured
//! seed. A DNS seed bypasses the per-address dial budget as a configured
//! seed does (the operator's zone is the operator's word), but its key is
//! still proven in the handshake and admitted by membership.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, RCODE, TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::Seed;
use crate::metrics::{Family, Kind};
use crate::node::{NodeHandle, Source};

/// How often the seed records are looked up again.
pub(crate) const REFRESH: Duration = Duration::from_secs(3600);
/// The first retry after a failed round.
const RETRY_FIRST: Duration = Duration::from_secs(30);
/// One nameserver's time to answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read (over TCP; UDP answers are at most 4 KiB).
const MAX_ANSWER: usize = 16 * 1024;
/// Seeds taken from one name at most.
const MAX_SEEDS_PER_NAME: usize = 32;

/// What DNS seeding did, for metrics.
#[derive(Debug, Default)]
pub(crate) struct DnsStats {
    lookups_ok: AtomicU64,
    lookups_failed: AtomicU64,
    bad_records: AtomicU64,
    seeds: AtomicU64,
}

impl DnsStats {
    /// Metric families.
    pub(crate) fn families(&self) -> Vec<Family> {
        vec![
            Family::new(
                "streembit_dns_seed_lookups",
                "Lookups of seeds_dns names, by outcome (failed: no nameserver answered, or the name does not exist).",
                Kind::Counter,
            )
            .with(&[("outcome", "ok")], self.lookups_ok.load(Ordering::Relaxed))
            .with(&[("outcome", "failed")], self.lookups_failed.load(Ordering::Relaxed)),
            Family::single(
                "streembit_dns_seed_bad_records",
                "TXT records of seeds_dns names that are not `<key>@host:port`, or whose host does not resolve.",
                Kind::Counter,
                self.bad_records.load(Ordering::Relaxed),
            ),
            Family::single(
                "streembit_dns_seeds",
                "Seeds found in DNS by the last round of lookups.",
                Kind::Gauge,
                self.seeds.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// Looks `names` up now and every [`REFRESH`], introducing every seed
/// found to the node, until `shutdown`.
pub(crate) async fn run(
    names: Vec<String>,
    node: NodeHandle,
    stats: std::sync::Arc<DnsStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let ok = round(&names, &node, &stats).await;
        wait = if ok {
            REFRESH
        } else if wait < RETRY_FIRST || wait == REFRESH {
            RETRY_FIRST
        } else {
            (wait * 2).min(REFRESH)
        };
    }
}

/// One round over every name; whether every lookup succeeded.
async fn round(names: &[String], node: &NodeHandle, stats: &DnsStats) -> bool {
    let mut all_ok = true;
    let mut found = 0u64;
    for name in names {
        let records = match lookup_txt(name).await {
            Ok(r) => {
                stats.lookups_ok.fetch_add(1, Ordering::Relaxed);
                r
            }
            Err(e) => {
                stats.lookups_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(name = %name, "seeds_dns: {e}; retrying later");
                all_ok = false;
                continue;
            }
        };
        if records.is_empty() {
            tracing::warn!(name = %name, "seeds_dns: the name has no TXT record");
        }
        for text in records.into_iter().take(MAX_SEEDS_PER_NAME) {
            match resolve(&text).await {
                Ok((seed, addr)) => {
                    found += 1;
                    tracing::debug!(name = %name, seed = %seed.key, %addr, "seed from DNS");
                    let _ = node.introduce(seed.key, vec![addr], Source::Dns).await;
                }
                Err(e) => {
                    stats.bad_records.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(name = %name, record = %text.chars().take(120).collect::<String>(), "seeds_dns: record skipped: {e}");
                }
            }
        }
    }
    stats.seeds.store(found, Ordering::Relaxed);
    all_ok
}

/// A record's seed, its host resolved (off the runtime's threads).
async fn resolve(text: &str) -> Result<(Seed, SocketAddr), String> {
    let seed = Seed::parse(text)?;
    let s = seed.clone();
    let addr = tokio::task::spawn_blocking(move || s.resolve())
        .await
        .map_err(|e| e.to_string())??;
    Ok((seed, addr))
}

/// The TXT records under `name`, each as one string; empty when the name
/// exists with none. Asks the nameservers of `/etc/resolv.conf` in turn.
pub(crate) async fn lookup_txt(name: &str) -> Result<Vec<String>, String> {
    let conf = std::fs::read("/etc/resolv.conf")
        .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
    let conf = resolv_conf::Config::parse(&conf)
        .map_err(|e| format!("cannot parse /etc/resolv.conf: {e}"))?;
    let servers: Vec<IpAddr> = conf
        .nameservers
        .into_iter()
        .map(IpAddr::from)
        .take(3)
        .collect();
    if servers.is_empty() {
        return Err("no nameserver in /etc/resolv.conf".into());
    }
    let mut last = String::new();
    for server in servers {
        match query(name, SocketAddr::new(server, 53)).await {
            Ok(records) => return Ok(records),
            Err(e) => last = format!("nameserver {server}: {e}"),
        }
    }
    Err(last)
}

/// One TXT query to one nameserver: UDP, then TCP if truncated.
async fn query(name: &str, server: SocketAddr) -> Result<Vec<String>, String> {
    let id: u16 = rand_core::RngCore::next_u32(&mut rand_core::OsRng) as u16;
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    let qname = Name::new(name).map_err(|e| format!("{name:?} is not a DNS name: {e}"))?;
    packet.questions.push(Question::new(
        qname,
        QTYPE::TYPE(TYPE::TXT),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    let bytes = packet
        .build_bytes_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let answer = loop {
        let n = tokio::time::timeout(QUERY_TIMEOUT, socket.recv(&mut buf))
            .await
            .map_err(|_| "no answer".to_owned())?
            .map_err(|e| e.to_string())?;
        // A stray datagram (wrong id) is not the answer: wait on.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            break buf[..n].to_vec();
        }
    };
    let truncated = Packet::parse(&answer)
        .map(|p| p.has_flags(PacketFlag::TRUNCATION))
        .unwrap_or(false);
    if truncated {
        let answer = query_tcp(&bytes, server).await?;
        return records(&answer, id);
    }
    records(&answer, id)
}

async fn query_tcp(query: &[u8], server: SocketAddr) -> Result<Vec<u8>, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server).await?;
        let len = u16::try_from(query.len()).unwrap_or(u16::MAX);
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(query).await?;
        let len = usize::from(stream.read_u16().await?);
        if len > MAX_ANSWER {
            return Err(std::io::Error::other(format!(
                "answer of {len} bytes, over {MAX_ANSWER}"
            )));
        }
        let mut answer = vec![0u8; len];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    };
    tokio::time::timeout(QUERY_TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer over TCP".to_owned())?
        .map_err(|e| format!("over TCP: {e}"))
}

/// The TXT records of an answer, one string each.
fn records(answer: &[u8], id: u16) -> Result<Vec<String>, String> {
    let packet = Packet::parse(answer).map_err(|e| format!("unreadable answer: {e}"))?;
    if packet.id() != id {
        return Err("answer to another query".into());
    }
    match packet.rcode() {
        RCODE::NoError => {}
        RCODE::NameError => return Err("no such name".into()),
        other => return Err(format!("nameserver answered {other:?}")),
    }
    Ok(packet
        .answers
        .into_iter()
        .filter_map(|rr| match rr.rdata {
            RData::TXT(txt) => String::try_from(txt).ok(),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::ResourceRecord;

    fn answer(id: u16, texts: &[&str], rcode: RCODE) -> Vec<u8> {
        let mut p = Packet::new_reply(id);
        *p.rcode_mut() = rcode;
        for t in texts {
            p.answers.push(ResourceRecord::new(
                Name::new_unchecked("_streembit._udp.example.org"),
                CLASS::IN,
                60,
                RData::TXT(simple_dns::rdata::TXT::try_from(*t).expect("txt")),
            ));
        }
        p.build_bytes_vec().expect("bytes")
    }

    #[test]
    fn answers_are_read_one_record_each() {
        let long = format!("{}@{}:7470", "ab".repeat(32), "h".repeat(300));
        let got = records(&answer(7, &["a@b:1", &long], RCODE::NoError), 7).expect("records");
        assert_eq!(got, vec!["a@b:1".to_owned(), long]);
        assert!(records(&answer(7, &[], RCODE::NameError), 7)
            .expect_err("nxdomain")
            .contains("no such name"));
        assert!(records(&answer(8, &["x"], RCODE::NoError), 7).is_err());
        assert!(records(b"\x00\x07garbage", 7).is_err());
    }
}
