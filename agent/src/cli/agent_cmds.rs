//! `status`, `peers`, `discover`, `lookup`, `metrics` and `devices`: thin clients of
//! the running agent's API.
//! A readable table by default, the API's JSON as is with `--json`.

use std::io::Write;

use super::agent_client::get;
use super::{ConfigArg, Failure, EXIT_INVALID};
use crate::api::{offset_text, ApiError, DeviceInfo, Discovered, LookupAnswer, Peer, Status};
use crate::daemon::config::AgentConfig;

pub(super) fn socket(config: &ConfigArg) -> Result<std::path::PathBuf, Failure> {
    Ok(AgentConfig::load(config.config.as_deref())
        .map_err(Failure::config)?
        .api_socket())
}

/// GETs `path` and decodes a 2xx JSON body as `T`; non-2xx is a failure
/// carrying the API's error message.
pub(super) fn fetch<T: serde::de::DeserializeOwned>(
    config: &ConfigArg,
    path: &str,
) -> Result<(T, Vec<u8>), Failure> {
    let (status, body) = get(&socket(config)?, path)?;
    refused(status, &body)?;
    let value = serde_json::from_slice(&body)
        .map_err(|e| Failure::usage(format!("unexpected answer from the agent: {e}")))?;
    Ok((value, body))
}

/// A non-2xx answer as a failure carrying the API's error message.
pub(super) fn refused(status: u16, body: &[u8]) -> Result<(), Failure> {
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

pub(super) fn write(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes()).map_err(Failure::usage)
}

pub(super) fn status(config: &ConfigArg, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (s, raw): (Status, _) = fetch(config, "/v1/status")?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    // The line systemd shows as the service's STATUS, from the same data.
    let (devices, _): (Vec<DeviceInfo>, _) = fetch(config, "/v1/devices")?;
    write(
        out,
        &format!(
            "{}\nnetwork:      {} ({})\nkey:          {}\nnode id:      {}\nlisten:       {}\nuptime:       {} s\nconnections:  {}\ntable size:   {}\nrecords:      {}\ndevices:      {}\nreachability: {}\nannounced:    {}\nclock:        {}\n",
            crate::daemon::systemd::summary(&s, &devices),
            s.network,
            s.network_kind,
            s.key,
            s.node_id,
            s.listen.join(", "),
            s.uptime_s,
            s.connections,
            s.table_size,
            s.records_stored,
            s.devices,
            s.reachability,
            s.addrs.join(", "),
            clock_line(&s)
        ),
    )
}

/// The clock line of `status`: the offset from the network's time, and
/// what to do when it is beyond what peers accept.
fn clock_line(s: &Status) -> String {
    if s.clock_peers == 0 {
        return "not compared with any peer yet".to_owned();
    }
    let mut line = format!(
        "local clock {} the network's (median of {} peers)",
        offset_text(s.clock_offset_ms),
        s.clock_peers
    );
    if s.clock_offset_ms.unsigned_abs() > 60_000 {
        line.push_str("; fix it: enable NTP or fit a real-time clock");
    }
    line
}

pub(super) fn peers(config: &ConfigArg, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (peers, raw): (Vec<Peer>, _) = fetch(config, "/v1/peers")?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = format!("{:<64}  {:<7} ADDRESSES\n", "KEY", "LEARNED");
    for p in &peers {
        text.push_str(&format!(
            "{:<64}  {:<7} {}\n",
            p.key,
            p.learned,
            p.addrs.join(", ")
        ));
    }
    text.push_str(&format!("{} peers\n", peers.len()));
    write(out, &text)
}

pub(super) fn console(config: &ConfigArg, out: &mut dyn Write) -> Result<(), Failure> {
    let (c, _): (serde_json::Value, _) = fetch(config, "/v1/console")?;
    let url = c["url"].as_str().unwrap_or_default();
    write(
        out,
        &format!("{url}\n(the URL carries the login token; from another machine: ssh -L <port>:127.0.0.1:<port> <this gateway>)\n"),
    )
}

pub(super) fn discover(config: &ConfigArg, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (d, raw): (Discovered, _) = fetch(config, "/v1/discovered")?;
    if json {
        return write(out, &format!("{}\n", String::from_utf8_lossy(&raw)));
    }
    let mut text = format!(
        "{:<64}  {:<9}  {:<8}  {:<24}  ADDRESSES\n",
        "KEY", "CONNECTED", "HEARD", "NETWORK"
    );
    for a in &d.agents {
        let network = if a.same_network {
            format!("{} (ours)", a.network)
        } else {
            a.network.clone()
        };
        text.push_str(&format!(
            "{:<64}  {:<9}  {:<8}  {:<24}  {}\n",
            a.key,
            if a.connected { "yes" } else { "no" },
            format!("{} s ago", a.last_seen_s),
            network,
            a.addrs.join(", ")
        ));
    }
    text.push_str(&format!("{} agents heard on the LAN\n", d.agents.len()));
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
            text.push_str(&format!("  {point:<16} {}\n", r.shown()));
        }
    }
    text.push_str(&format!("{} devices\n", devices.len()));
    write(out, &text)
}
