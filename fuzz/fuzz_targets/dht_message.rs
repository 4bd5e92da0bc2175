//! The DHT message decoder on arbitrary payloads of every kind: never
//! panics; whatever it accepts re-encodes within the kind's cap and decodes
//! to the same message. Then the other direction: a message built from the
//! input encodes, and decodes back to itself.
#![no_main]

use libfuzzer_sys::arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use streembit_agent::internals::dht::{
    Addrs, Contact, Message, MessageKind, StoreRefusal, MAX_RECORD_WIRE_BYTES,
};
use streembit_agent::identity::NodeId;

fn contact(u: &mut Unstructured<'_>) -> ArbResult<Contact> {
    let key: [u8; 32] = u.arbitrary()?;
    let n = u.int_in_range(0..=4)?;
    let mut addrs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u.int_in_range(0..=96)?;
        let s: String = (0..len)
            .map(|_| u.int_in_range(b' '..=b'~').map(char::from))
            .collect::<ArbResult<_>>()?;
        addrs.push(s);
    }
    let addrs = Addrs::new(&addrs).map_err(|_| libfuzzer_sys::arbitrary::Error::IncorrectFormat)?;
    Ok(Contact::from_claimed(key, addrs))
}

fn message(u: &mut Unstructured<'_>) -> ArbResult<Message> {
    let rid: u64 = u.arbitrary()?;
    let contacts = |u: &mut Unstructured<'_>| -> ArbResult<Vec<Contact>> {
        let n = u.int_in_range(0..=20)?;
        (0..n).map(|_| contact(u)).collect()
    };
    let record = |u: &mut Unstructured<'_>| -> ArbResult<Vec<u8>> {
        let n = u.int_in_range(0..=MAX_RECORD_WIRE_BYTES)?;
        Ok(u.bytes(n.min(u.len()))?.to_vec())
    };
    Ok(match u.int_in_range(0..=7)? {
        0 => Message::Ping { rid },
        1 => Message::Pong { rid },
        2 => Message::FindNode {
            rid,
            target: NodeId(u.arbitrary()?),
        },
        3 => Message::Nodes {
            rid,
            nodes: contacts(u)?,
        },
        4 => Message::FindValue {
            rid,
            key: NodeId(u.arbitrary()?),
        },
        5 => {
            if u.arbitrary()? {
                Message::Value {
                    rid,
                    record: Some(record(u)?),
                    nodes: Vec::new(),
                }
            } else {
                Message::Value {
                    rid,
                    record: None,
                    nodes: contacts(u)?,
                }
            }
        }
        6 => Message::Store {
            rid,
            record: record(u)?,
        },
        _ => {
            let refusals = [
                StoreRefusal::TooLarge,
                StoreRefusal::Invalid,
                StoreRefusal::Stale,
                StoreRefusal::PublisherQuota,
                StoreRefusal::Full,
                StoreRefusal::NotClosest,
            ];
            let i = u.int_in_range(0..=refusals.len())?;
            Message::Stored {
                rid,
                result: refusals.get(i).map_or(Ok(()), |r| Err(*r)),
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // 1. Arbitrary bytes under every kind.
    for kind in MessageKind::ALL {
        if let Ok(m) = Message::decode(kind, data) {
            assert_eq!(m.kind(), kind);
            let again = m.encode();
            assert!(
                again.len() <= kind.max_payload(),
                "{kind:?}: {} bytes",
                again.len()
            );
            assert_eq!(Message::decode(kind, &again).ok().as_ref(), Some(&m));
        }
    }
    // 2. decode(encode(m)) == m for a message built from the input.
    let mut u = Unstructured::new(data);
    if let Ok(m) = message(&mut u) {
        let bytes = m.encode();
        assert!(
            bytes.len() <= m.kind().max_payload(),
            "{:?}: {} bytes",
            m.kind(),
            bytes.len()
        );
        assert_eq!(Message::decode(m.kind(), &bytes).ok(), Some(m));
    }
});
