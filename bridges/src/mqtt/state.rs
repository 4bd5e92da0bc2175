//! MQTT protocol state: which topic feeds which points, each device's
//! status, and the commands waiting for their PUBACK.
//!
//! No I/O and no clock: the event loop passes in packets and `now`, and
//! carries out what comes back.

// Design: commands are matched to packet ids by order. rumqttc takes
// requests from its channel in order and reports `Outgoing::Publish(pkid)`
// for each, so the n-th command handed to the client is the n-th new pkid
// reported. A pkid already known is a retransmission after a reconnect.

use std::collections::{HashMap, VecDeque};

use super::config::{MqttBus, MqttDevice};
use super::payload::{command_payload, parse, point_value};
use crate::bus::Access;
use crate::bus::Reply;
use crate::clock::Now;
use crate::error::{BridgeError, PointError};
use crate::reading::{Command, Reading};
use crate::status::{DeviceState, DeviceStatus};

/// A message to publish for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) retain: bool,
}

struct Waiting {
    out: Outgoing,
    reply: Reply,
}

/// State of one broker connection and its devices.
pub(crate) struct MqttState {
    devices: Vec<MqttDevice>,
    /// topic → (device index, point index)
    by_topic: HashMap<String, Vec<(usize, usize)>>,
    /// availability topic → device index
    availability: HashMap<String, usize>,
    max_payload: usize,
    broker: Result<(), (String, u64)>,
    available: Vec<Option<bool>>,
    status: Vec<DeviceStatus>,
    next_id: u64,
    /// Commands handed to the client, not yet seen as an outgoing publish.
    unsent: VecDeque<u64>,
    /// pkid → command id, for publishes sent and not yet acknowledged.
    by_pkid: HashMap<u16, u64>,
    waiting: HashMap<u64, Waiting>,
}

impl MqttState {
    pub(crate) fn new(bus: &MqttBus) -> Self {
        let mut by_topic: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut availability = HashMap::new();
        for (d, dev) in bus.devices.iter().enumerate() {
            for (p, pt) in dev.points.iter().enumerate() {
                by_topic.entry(pt.topic.clone()).or_default().push((d, p));
            }
            if let Some(a) = &dev.availability {
                availability.insert(a.topic.clone(), d);
            }
        }
        MqttState {
            devices: bus.devices.clone(),
            by_topic,
            availability,
            max_payload: bus.max_payload,
            broker: Err(("not connected yet".into(), 0)),
            available: vec![None; bus.devices.len()],
            status: vec![DeviceStatus::starting(); bus.devices.len()],
            next_id: 0,
            unsent: VecDeque::new(),
            by_pkid: HashMap::new(),
            waiting: HashMap::new(),
        }
    }

    /// Every topic to subscribe to, sorted, without repeats.
    pub(crate) fn subscriptions(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .by_topic
            .keys()
            .chain(self.availability.keys())
            .cloned()
            .collect();
        t.sort();
        t.dedup();
        t
    }

    /// Device names and their current status.
    pub(crate) fn statuses(&self) -> impl Iterator<Item = (&str, &DeviceStatus)> {
        self.devices
            .iter()
            .map(|d| d.name.as_str())
            .zip(self.status.iter())
    }

    fn refresh(&mut self, d: usize, now: Now) {
        let Some(st) = self.status.get_mut(d) else {
            return;
        };
        let offline = |reason: String, st: &DeviceStatus| {
            let since = match &st.state {
                DeviceState::Offline { since, .. } => *since,
                _ => now.unix_ms,
            };
            DeviceState::Offline { reason, since }
        };
        let has_availability = self.devices[d].availability.is_some();
        st.state = match (&self.broker, self.available[d]) {
            (Err((reason, _)), _) => offline(format!("broker: {reason}"), st),
            (Ok(()), Some(false)) => offline("the device announced it is offline".into(), st),
            (Ok(()), Some(true)) => DeviceState::Online,
            (Ok(()), None) if has_availability => DeviceState::Starting,
            (Ok(()), None) => DeviceState::Online,
        };
    }

    fn refresh_all(&mut self, now: Now) {
        for d in 0..self.devices.len() {
            self.refresh(d, now);
        }
    }

    /// The broker accepted our connection. Returns the commands to publish
    /// again: on a new session the broker and the client forgot them.
    pub(crate) fn handle_connected(&mut self, session_present: bool, now: Now) -> Vec<Outgoing> {
        self.broker = Ok(());
        self.refresh_all(now);
        if session_present {
            return Vec::new();
        }
        let mut sent: Vec<(u16, u64)> = self.by_pkid.drain().collect();
        sent.sort_by_key(|(_, id)| *id);
        let mut again = Vec::new();
        for (_, id) in sent {
            if let Some(w) = self.waiting.get(&id) {
                again.push(w.out.clone());
                self.unsent.push_back(id);
            }
        }
        again
    }

    /// The connection failed or dropped.
    pub(crate) fn handle_disconnected(&mut self, reason: &str, now: Now) {
        if self.broker.is_ok() {
            self.broker = Err((reason.to_owned(), now.unix_ms));
        }
        self.refresh_all(now);
    }

    /// An incoming message: readings for every point on its topic, and
    /// availability updates.
    pub(crate) fn handle_publish(&mut self, topic: &str, payload: &[u8], now: Now) -> Vec<Reading> {
        let mut out = Vec::new();
        if let Some(&d) = self.availability.get(topic) {
            if let Some(a) = &self.devices[d].availability {
                let text = String::from_utf8_lossy(payload);
                let text = text.trim();
                if text == a.online {
                    self.available[d] = Some(true);
                } else if text == a.offline {
                    self.available[d] = Some(false);
                }
                self.refresh(d, now);
            }
        }
        let Some(targets) = self.by_topic.get(topic) else {
            return out;
        };
        if payload.len() > self.max_payload {
            for &(d, p) in targets {
                let (dev, pt) = (&self.devices[d], &self.devices[d].points[p]);
                let e = PointError::TooLarge {
                    size: payload.len(),
                    limit: self.max_payload,
                };
                out.push(Reading::bad(
                    &dev.name,
                    &pt.name,
                    e,
                    pt.unit.as_deref(),
                    now.unix_ms,
                ));
            }
        } else {
            let needs_json = targets
                .iter()
                .any(|&(d, p)| self.devices[d].points[p].pointer.is_some());
            let (text, json) = parse(payload, needs_json);
            for &(d, p) in targets {
                let (dev, pt) = (&self.devices[d], &self.devices[d].points[p]);
                let v = point_value(pt, &text, json.as_ref());
                out.push(Reading::from_result(
                    &dev.name,
                    &pt.name,
                    v,
                    pt.unit.as_deref(),
                    now.unix_ms,
                ));
            }
        }
        let mut touched: Vec<usize> = targets.iter().map(|(d, _)| *d).collect();
        touched.dedup();
        for d in touched {
            self.status[d].last_success = Some(now.unix_ms);
        }
        out
    }

    /// Checks and encodes a command. On success it is waiting for its
    /// PUBACK; the caller hands `Outgoing` to the client (in this order).
    pub(crate) fn handle_command(&mut self, cmd: Command, reply: Reply) -> Option<Outgoing> {
        match self.encode(&cmd) {
            Ok(out) => {
                let id = self.next_id;
                self.next_id += 1;
                self.unsent.push_back(id);
                self.waiting.insert(
                    id,
                    Waiting {
                        out: out.clone(),
                        reply,
                    },
                );
                Some(out)
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                None
            }
        }
    }

    /// The client could not take the last command (its queue is full).
    pub(crate) fn handle_rejected(&mut self, err: BridgeError) {
        if let Some(id) = self.unsent.pop_back() {
            if let Some(w) = self.waiting.remove(&id) {
                let _ = w.reply.send(Err(err.into()));
            }
        }
    }

    fn encode(&self, cmd: &Command) -> Result<Outgoing, PointError> {
        let unknown = || PointError::Unknown(format!("{}.{}", cmd.device, cmd.point));
        let dev = self
            .devices
            .iter()
            .find(|d| d.name == cmd.device)
            .ok_or_else(unknown)?;
        let pt = dev
            .points
            .iter()
            .find(|p| p.name == cmd.point)
            .ok_or_else(unknown)?;
        let c = match (&pt.command, pt.access) {
            (Some(c), Access::ReadWrite) => c,
            _ => return Err(PointError::ReadOnly),
        };
        Ok(Outgoing {
            topic: c.topic.clone(),
            payload: command_payload(pt, c, &cmd.value)?,
            retain: c.retain,
        })
    }

    /// The client sent a publish with `pkid` (first time or again).
    pub(crate) fn handle_outgoing_publish(&mut self, pkid: u16) {
        if pkid == 0 || self.by_pkid.contains_key(&pkid) {
            return;
        }
        if let Some(id) = self.unsent.pop_front() {
            self.by_pkid.insert(pkid, id);
        }
    }

    /// The broker acknowledged `pkid`: that command is done.
    pub(crate) fn handle_puback(&mut self, pkid: u16) {
        if let Some(id) = self.by_pkid.remove(&pkid) {
            if let Some(w) = self.waiting.remove(&id) {
                let _ = w.reply.send(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CommandError;
    use crate::value::Value;
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    fn now(ms: u64) -> Now {
        Now {
            instant: Instant::now(),
            unix_ms: ms,
        }
    }

    fn bus() -> MqttBus {
        let text = r#"
[mqtt]
host = "localhost"
client_id = "gw"
max_payload = 64
[[mqtt.devices]]
name = "plug"
writers = ["3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29"]
availability = { topic = "tele/plug/LWT" }
points = [
  { name = "power", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Power", type = "float", unit = "W" },
  { name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = { topic = "cmnd/plug/POWER" } },
]
"#;
        crate::bus::parse_table(text)
    }

    fn state() -> MqttState {
        MqttState::new(&bus())
    }

    /// A message on every point's topic yields one reading per point, named
    /// as `point_names` says.
    #[test]
    fn readings_carry_the_point_names() {
        let mut s = state();
        let mut seen: Vec<String> = [
            ("tele/plug/SENSOR", &br#"{"ENERGY":{"Power":3}}"#[..]),
            ("stat/plug/POWER", b"ON"),
        ]
        .into_iter()
        .flat_map(|(topic, payload)| s.handle_publish(topic, payload, now(1)))
        .map(|r| r.point)
        .collect();
        seen.sort();
        let mut names = crate::bus::BusConfig::point_names(&bus(), "plug");
        names.sort();
        assert_eq!(seen, names);
        assert_eq!(names, ["power", "relay"]);
    }

    #[test]
    fn status_follows_broker_and_availability() {
        let mut s = state();
        assert_eq!(s.subscriptions().len(), 3);
        let _ = s.handle_connected(false, now(1));
        assert_eq!(s.status[0].state, DeviceState::Starting);
        let _ = s.handle_publish("tele/plug/LWT", b"Online", now(2));
        assert_eq!(s.status[0].state, DeviceState::Online);
        s.handle_disconnected("connection refused", now(3));
        assert!(
            matches!(&s.status[0].state, DeviceState::Offline { reason, since: 3 } if reason.contains("refused"))
        );
        let _ = s.handle_connected(true, now(4));
        let _ = s.handle_publish("tele/plug/LWT", b"Offline", now(5));
        assert!(matches!(
            &s.status[0].state,
            DeviceState::Offline { since: 5, .. }
        ));
    }

    #[test]
    fn readings_and_point_errors() {
        let mut s = state();
        let r = s.handle_publish("tele/plug/SENSOR", br#"{"ENERGY":{"Power":12.5}}"#, now(7));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].value, Some(Value::Float(12.5)));
        assert_eq!(r[0].timestamp, 7);
        assert_eq!(s.status[0].last_success, Some(7));
        let big = vec![b'x'; 65];
        let r = s.handle_publish("tele/plug/SENSOR", &big, now(8));
        assert!(matches!(
            r[0].error(),
            Some(PointError::TooLarge {
                size: 65,
                limit: 64
            })
        ));
        assert!(s.handle_publish("other/topic", b"1", now(9)).is_empty());
    }

    #[test]
    fn commands_resolve_on_puback_and_survive_a_new_session() {
        let mut s = state();
        let (tx, mut rx) = oneshot::channel();
        let cmd = Command {
            device: "plug".into(),
            point: "relay".into(),
            value: Value::Bool(true),
        };
        let out = s.handle_command(cmd.clone(), tx).expect("encoded");
        assert_eq!(out.payload, b"ON");
        s.handle_outgoing_publish(7);
        s.handle_outgoing_publish(7); // retransmission: same command
        assert!(rx.try_recv().is_err());
        // The broker lost the session: the command is published again.
        let again = s.handle_connected(false, now(1));
        assert_eq!(again, vec![out]);
        s.handle_outgoing_publish(9);
        s.handle_puback(7); // stale ack of the old pkid: ignored
        assert!(rx.try_recv().is_err());
        s.handle_puback(9);
        assert_eq!(rx.try_recv(), Ok(Ok(())));

        let (tx, mut rx) = oneshot::channel();
        let bad = Command {
            point: "power".into(),
            ..cmd
        };
        assert!(s.handle_command(bad, tx).is_none());
        assert_eq!(
            rx.try_recv(),
            Ok(Err(CommandError::Point(PointError::ReadOnly)))
        );
    }
}
