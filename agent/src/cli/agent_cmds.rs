//! `status`, `peers` and `lookup`: thin clients of the running agent's API.
//! A readable table by default, the API's JSON as is with `--json`.

use std::io::Write;

use super::agent_client::{get, post};
use super::{ConfigArg, Failure, ReadArgs, WriteArgs, EXIT_INVALID};
use crate::config::AgentConfig;
use crate::daemon::control::{ApiError, LookupAnswer, Peer, Status};
use crate::devices::DeviceInfo;

fn socket(config: &ConfigArg) -> Result<std::path::PathBuf, Failure> {
    Ok(AgentConfig::load(config.config.as_deref())
        .map_err(Failure::config)?
        .api_socket())
}

/// GETs `path` and decodes a 2xx JSON body as `T`; non-2xx is a failure
/// carrying the API's error message.
fn fetch<T: serde::de::DeserializeOwned>(
    config: &ConfigArg,
    path: &str,
) -> Result<(T, Vec<u8>), Failure> {
    let (status, body) = get(&socket(config)?, path)?;
    refused(status, &body)?;
    let value = serde_json::from_slice(&body)
        .map_err(|e| Failure::usage(format!("unexpected answer from the agent: {e}")))?;
    Ok((value, body))
}

/// A point's value with its unit, or why there is none.
fn shown(r: &crate::devices::PointReading) -> String {
    match &r.value {
        Some(v) => format!("{v} {}", r.unit.as_deref().unwrap_or(""))
            .trim_end()
            .to_owned(),
        None => r.quality.clone(),
    }
}

/// A non-2xx answer as a failure carrying the API's error message.
fn refused(status: u16, body: &[u8]) -> Result<(), Failure> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = serde_json::from_slice::<ApiError>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    Err(Failure {
        code: EXIT_INVALID,
        message,
    })
}

fn write(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes()).map_err(Failure::usage)
}

pub(super) fn status(config: &ConfigArg, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (s, raw): (Status, _) = fetch(config, "/v1/status")?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    write(
        out,
        &format!(
            "network:      {} ({})\nkey:          {}\nnode id:      {}\nlisten:       {}\nuptime:       {} s\nconnections:  {}\ntable size:   {}\nrecords:      {}\ndevices:      {}\n",
            s.network,
            s.network_kind,
            s.key,
            s.node_id,
            s.listen.join(", "),
            s.uptime_s,
            s.connections,
            s.table_size,
            s.records_stored,
            s.devices
        ),
    )
}

pub(super) fn peers(config: &ConfigArg, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (peers, raw): (Vec<Peer>, _) = fetch(config, "/v1/peers")?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = format!("{:<64}  ADDRESSES\n", "KEY");
    for p in &peers {
        text.push_str(&format!("{:<64}  {}\n", p.key, p.addrs.join(", ")));
    }
    text.push_str(&format!("{} peers\n", peers.len()));
    write(out, &text)
}

pub(super) fn lookup(
    config: &ConfigArg,
    key: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let key: crate::identity::PublicKey = key.parse().map_err(Failure::usage)?;
    let (a, raw): (LookupAnswer, _) = fetch(config, &format!("/v1/lookup/{key}"))?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = format!(
        "key:       {}\nkind:      {}\naddresses: {}\nsequence:  {}\n",
        a.key,
        a.kind,
        a.addrs.join(", "),
        a.seq
    );
    if let Some(g) = &a.gateway {
        text.push_str(&format!("gateway:   {g}\n"));
    }
    text.push_str(&format!(
        "lookup:    {} rounds, {} messages\n",
        a.rounds, a.messages
    ));
    write(out, &text)
}

pub(super) fn metrics(config: &ConfigArg, out: &mut dyn Write) -> Result<(), Failure> {
    let (status, body) = get(&socket(config)?, "/metrics")?;
    refused(status, &body)?;
    out.write_all(&body).map_err(Failure::usage)
}

pub(super) fn devices(config: &ConfigArg, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (devices, raw): (Vec<DeviceInfo>, _) = fetch(config, "/v1/devices")?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = String::new();
    for d in &devices {
        text.push_str(&format!(
            "{}  ({}, {})\n  key {}\n",
            d.name, d.bridge, d.state, d.key
        ));
        for (point, r) in &d.points {
            text.push_str(&format!("  {point:<16} {}\n", shown(r)));
        }
    }
    text.push_str(&format!("{} devices\n", devices.len()));
    write(out, &text)
}

pub(super) fn read(args: &ReadArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let path = format!("/v1/devices/{}", args.device);
    let (device, _): (DeviceInfo, _) = fetch(&args.common.config, &path)?;
    let points: Vec<(&String, &crate::devices::PointReading)> = device
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
            shown(r),
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
    let path = format!("/v1/devices/{}/{}", args.device, args.point);
    let (status, answer) = post(&socket(&args.config)?, &path, body)?;
    refused(status, &answer)?;
    write(out, "ok\n")
}
