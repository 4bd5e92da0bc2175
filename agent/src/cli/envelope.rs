//! `streembit sign` and `streembit verify`.

use std::io::Write;

use serde_json::json;

use super::encoding::{read_input, Encoding};
use super::keys::keystore;
use super::{ConfigArg, Failure, SignArgs, VerifyArgs, EXIT_INVALID};
use crate::daemon::config::AgentConfig;
use crate::identity::{KeyFile, PublicKey};
use crate::wire::payload::{cbor_to_json, input_to_cbor};
use crate::wire::{
    self, Audience, Kind, NetworkId, Opened, Sealer, WireError, DEFAULT_MAX_ENVELOPE_BYTES,
    HARD_MAX_ENVELOPE_BYTES,
};

pub(super) fn sign(args: &SignArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let kind: Kind = args.kind.parse().map_err(|_| {
        Failure::usage(format!(
            "unknown kind {:?}; known kinds: {}",
            args.kind,
            kind_list()
        ))
    })?;
    let network = network(args.network.as_deref(), &args.config)?;
    let key_path = match &args.key {
        Some(p) => p.clone(),
        None => keystore(&args.config)?.gateway_key_path(),
    };
    let key = KeyFile::load(&key_path).map_err(Failure::usage)?;
    let audience = match &args.to {
        Some(to) => Audience::Node(parse_key(to)?.node_id()),
        None => Audience::Anyone,
    };
    let payload = input_to_cbor(&read_input(&args.input, DEFAULT_MAX_ENVELOPE_BYTES)?);
    let bytes = Sealer::new(network)
        .seal(
            &key,
            kind,
            audience,
            &payload,
            crate::clock::Clock::system().wall(),
        )
        .map_err(|e| match e {
            WireError::WrongAudience { .. } if args.to.is_none() => {
                Failure::usage(format!("{e}: pass --to <recipient public key>"))
            }
            other => Failure::usage(other),
        })?;
    out.write_all(&Encoding::from(args.encoding).encode(&bytes))
        .map_err(Failure::usage)
}

pub(super) fn verify(args: &VerifyArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let network = network(args.network.as_deref(), &args.config)?;
    let raw = read_input(&args.input, 2 * HARD_MAX_ENVELOPE_BYTES + 16)?;
    let bytes = Encoding::from(args.encoding).decode(&raw)?;
    let recipient = match &args.to {
        Some(to) => Some(Audience::Node(parse_key(to)?.node_id())),
        None => own_key(&args.config).map(|k| Audience::Node(k.node_id())),
    };
    let result = check(&bytes, &network, recipient.as_ref(), args.fresh);
    match (&result, args.json) {
        (Ok(opened), true) => print_json(out, &describe(opened)),
        (Ok(opened), false) => print_human(out, opened),
        (Err(e), true) => print_json(
            out,
            &json!({"valid": false, "reason": e.reason(), "error": e.to_string()}),
        ),
        (Err(_), false) => Ok(()),
    }?;
    result.map(|_| ()).map_err(|e| Failure {
        code: EXIT_INVALID,
        message: format!("invalid: {e}"),
    })
}

fn check(
    bytes: &[u8],
    network: &NetworkId,
    recipient: Option<&Audience>,
    fresh: Option<u64>,
) -> Result<Opened, WireError> {
    let opened = wire::verify_signature(bytes, DEFAULT_MAX_ENVELOPE_BYTES, recipient)?;
    if opened.network() != network {
        return Err(WireError::WrongNetwork {
            expected: network.to_string(),
            got: opened.network().to_string(),
        });
    }
    if let Some(secs) = fresh {
        let now = crate::clock::Clock::system().wall();
        let skew_ms = secs.saturating_mul(1000);
        if opened.timestamp().0.abs_diff(now.0) > skew_ms {
            return Err(WireError::Stale {
                timestamp: opened.timestamp().0,
                now: now.0,
                skew_ms,
            });
        }
    }
    Ok(opened)
}

fn describe(o: &Opened) -> serde_json::Value {
    json!({
        "valid": true,
        "sender": o.sender().to_string(),
        "network": o.network().as_str(),
        "kind": o.kind().name(),
        "timestamp_ms": o.timestamp().0,
        "nonce": o.nonce(),
        "payload": cbor_to_json(o.payload()),
    })
}

fn print_json(out: &mut dyn Write, v: &serde_json::Value) -> Result<(), Failure> {
    writeln!(out, "{v}").map_err(Failure::usage)
}

fn print_human(out: &mut dyn Write, o: &Opened) -> Result<(), Failure> {
    let payload = match cbor_to_json(o.payload()) {
        Some(j) => j.to_string(),
        None => format!("(not one CBOR item) {}", hex::encode(o.payload())),
    };
    writeln!(
        out,
        "valid\nsender:    {}\nnetwork:   {}\nkind:      {}\ntimestamp: {} ms\nnonce:     {}\npayload:   {}",
        o.sender(),
        o.network(),
        o.kind(),
        o.timestamp().0,
        o.nonce(),
        payload
    )
    .map_err(Failure::usage)
}

fn network(flag: Option<&str>, config: &ConfigArg) -> Result<NetworkId, Failure> {
    match flag {
        Some(n) => n.parse().map_err(Failure::usage),
        None => AgentConfig::load(config.config.as_deref())
            .and_then(|c| c.network_id())
            .map_err(Failure::usage),
    }
}

fn parse_key(text: &str) -> Result<PublicKey, Failure> {
    text.parse().map_err(Failure::usage)
}

/// This agent's own key, if it has one: the default recipient of
/// point-to-point envelopes being verified.
fn own_key(config: &ConfigArg) -> Option<PublicKey> {
    let store = keystore(config).ok()?;
    KeyFile::load(&store.gateway_key_path())
        .ok()
        .map(|k| k.public())
}

fn kind_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}
