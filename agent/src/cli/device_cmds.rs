//! `read`, `write`, `subscribe`, `unsubscribe`, `subscriptions` and
//! `inbox`: devices anywhere on the network, through the running agent.
//!
//! A device given by key is reached over the network (or served from the
//! board when this agent hosts it), and every reading printed has been
//! verified with the device key. A device given by name is one hosted
//! here: `write` by name is the operator's own write (no `writers` check),
//! `write` by key is a signed command that the device's gateway checks
//! against the point's `writers`.

use std::io::Write;

use super::agent_client::{delete, post};
use super::agent_cmds::{fetch, refused, socket, write};
use super::{Failure, InboxArgs, JsonArgs, KeyArgs, ReadArgs, WriteArgs, EXIT_INVALID};
use crate::api::{DeviceInfo, InboxEntry, ReadAnswer, ReadingView, SubscriptionInfo};
use crate::identity::PublicKey;

pub(super) fn read(args: &ReadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let Ok(key) = args.device.parse::<PublicKey>() else {
        return read_local(args, out);
    };
    let mut path = format!("/v1/read/{key}");
    if let Some(p) = &args.point {
        path.push_str(&format!("?point={p}"));
    }
    let (answer, raw): (ReadAnswer, _) = fetch(&args.common.config, &path)?;
    if args.cose {
        let text: String = answer
            .readings
            .iter()
            .map(|r| format!("{} {}\n", r.point, r.cose.as_deref().unwrap_or("")))
            .collect();
        return write(out, &text);
    }
    if args.common.json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = format!("{}  (verified with the device key)\n", answer.device);
    for r in &answer.readings {
        text.push_str(&format!(
            "  {:<16} {}  at {} ms  ({}, seq {})\n",
            r.point,
            r.shown(),
            r.timestamp_ms,
            r.device,
            r.seq
        ));
    }
    write(out, &text)
}

/// `read NAME`: a device hosted here, from the board.
fn read_local(args: &ReadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let path = format!("/v1/devices/{}", args.device);
    let (device, _): (DeviceInfo, _) = fetch(&args.common.config, &path)?;
    let points: Vec<(&String, &ReadingView)> = device
        .points
        .iter()
        .filter(|(name, _)| args.point.as_ref().is_none_or(|p| p == *name))
        .collect();
    if let Some(p) = &args.point {
        if points.is_empty() {
            return Err(Failure {
                code: EXIT_INVALID,
                message: format!("device {} has no reading for point {p:?} yet", device.name),
            });
        }
    }
    if args.cose {
        let mut text = String::new();
        for (name, r) in &points {
            let cose = r.cose.as_deref().ok_or_else(|| Failure {
                code: EXIT_INVALID,
                message: format!("point {name} has no signed reading yet"),
            })?;
            text.push_str(&format!("{name} {cose}\n"));
        }
        return write(out, &text);
    }
    if args.common.json {
        let map: serde_json::Map<String, serde_json::Value> = points
            .iter()
            .map(|(k, v)| ((*k).clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        let v = serde_json::json!({"device": device.name, "key": device.key, "state": device.state, "points": map});
        return write(out, &format!("{v}\n"));
    }
    let mut text = format!("{} ({})  {}\n", device.name, device.state, device.key);
    for (name, r) in points {
        text.push_str(&format!(
            "  {name:<16} {}  at {} ms\n",
            r.shown(),
            r.timestamp_ms
        ));
    }
    write(out, &text)
}

pub(super) fn write_point(args: &WriteArgs, out: &mut dyn Write) -> Result<(), Failure> {
    // true/false and numbers as such, anything else as text.
    let value = serde_json::from_str::<serde_json::Value>(&args.value)
        .ok()
        .filter(|v| v.is_boolean() || v.is_number())
        .unwrap_or_else(|| serde_json::Value::String(args.value.clone()));
    let body = serde_json::to_vec(&serde_json::json!({ "value": value }))
        .map_err(|e| Failure::usage(e.to_string()))?;
    let path = match args.device.parse::<PublicKey>() {
        Ok(key) => format!("/v1/write/{key}/{}", args.point),
        Err(_) => format!("/v1/devices/{}/{}", args.device, args.point),
    };
    let (status, answer) = post(&socket(&args.config)?, &path, body)?;
    refused(status, &answer)?;
    let applied = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v.get("value").cloned());
    match applied {
        Some(v) => write(
            out,
            &format!("ok: {} = {v} (confirmed by the device)\n", args.point),
        ),
        None => write(out, "ok\n"),
    }
}

pub(super) fn subscribe(args: &KeyArgs, on: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let key: PublicKey = args.device.parse().map_err(Failure::usage)?;
    let socket = socket(&args.config)?;
    let path = format!("/v1/subscriptions/{key}");
    let (status, body) = if on {
        post(&socket, &path, Vec::new())?
    } else {
        delete(&socket, &path)?
    };
    refused(status, &body)?;
    write(
        out,
        &format!(
            "{} {key}\n",
            if on {
                "subscribed to"
            } else {
                "unsubscribed from"
            }
        ),
    )
}

pub(super) fn subscriptions(args: &JsonArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (list, raw): (Vec<SubscriptionInfo>, _) = fetch(&args.config, "/v1/subscriptions")?;
    if args.json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = String::new();
    for s in &list {
        text.push_str(&format!(
            "{}  {}  last seq {}  held {}  received {}  duplicates {}  behind {}  rejected {}  dropped {}\n",
            s.device,
            if s.connected { "connected" } else { "waiting" },
            s.last_seq,
            s.held,
            s.received,
            s.duplicates,
            s.behind,
            s.rejected,
            s.dropped
        ));
        if let (false, Some(e)) = (s.connected, &s.last_error) {
            text.push_str(&format!("  last error: {e}\n"));
        }
    }
    text.push_str(&format!("{} subscriptions\n", list.len()));
    write(out, &text)
}

pub(super) fn inbox(args: &InboxArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let key: PublicKey = args.device.parse().map_err(Failure::usage)?;
    let path = format!(
        "/v1/subscriptions/{key}/readings?after={}&limit={}",
        args.after, args.limit
    );
    let (entries, raw): (Vec<InboxEntry>, _) = fetch(&args.common.config, &path)?;
    if args.common.json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let text: String = entries
        .iter()
        .map(|e| {
            let r = &e.reading;
            if args.cose {
                format!(
                    "{} {} {}\n",
                    r.seq,
                    r.point,
                    r.cose.as_deref().unwrap_or("")
                )
            } else {
                format!(
                    "{} {:<16} {}  at {} ms\n",
                    r.seq,
                    r.point,
                    r.shown(),
                    r.timestamp_ms
                )
            }
        })
        .collect();
    write(out, &text)
}
