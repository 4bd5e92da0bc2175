//! The calling side of the device protocol: read and write devices hosted
//! by other gateways.
//!
//! A device is found by looking its key up in the DHT (its record names
//! its gateway's addresses), then dialed by its own key: the handshake
//! proves the device's key, requests are signed by this agent's key for
//! the device, and answers must be signed by the device's key. Readings
//! are checked one by one against the device key, so a gateway cannot pass
//! off readings it signed itself.

use std::time::Duration;

use super::protocol::{Answer, Request};
use super::reading::verify_readings;
use crate::api::ReadingView;
use crate::identity::PublicKey;
use crate::node::{parse_addrs, Dialer, NodeError, NodeHandle, PeerAddr};
use crate::transport::framing::{read_frame, write_frame};
use crate::transport::Connection;
use crate::wire::payload::value_to_json;
use crate::wire::{Kind, NetworkId, Session};

/// A whole request (lookup, dial, answer) may take this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What went wrong with a remote device, and whose doing it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RemoteError {
    /// No device record for the key, or it could not be reached (the
    /// network, or the device's gateway is away).
    #[error("device unreachable: {0}")]
    Unreachable(String),
    /// The device refused, with its signed `error` answer.
    #[error("refused ({code}): {message}")]
    Refused {
        /// Its code (`not_authorized`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// The answer failed a check (signature, signer, format): the far
    /// side's fault, or someone in between.
    #[error("invalid answer: {0}")]
    Invalid(String),
}

/// This agent as a client of remote devices.
pub(crate) struct Remote {
    session: Session,
    network: NetworkId,
    dialer: Dialer,
    node: NodeHandle,
}

impl Remote {
    /// A client whose requests `session` signs, dialing through the
    /// node's connection cache and looking devices up through `node`.
    pub(crate) fn new(
        session: Session,
        network: NetworkId,
        dialer: Dialer,
        node: NodeHandle,
    ) -> Self {
        Self {
            session,
            network,
            dialer,
            node,
        }
    }

    /// The network readings must be signed for.
    pub(crate) fn network(&self) -> &NetworkId {
        &self.network
    }

    /// The envelope size cap.
    pub(crate) fn max_frame(&self) -> usize {
        self.session.max_frame()
    }

    /// `device`'s gateway and where it listens, from its device record.
    async fn locate(&self, device: &PublicKey) -> Result<(PublicKey, Vec<PeerAddr>), RemoteError> {
        let answer = match self.node.lookup(*device).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err(RemoteError::Unreachable(format!("no record for {device}"))),
            Err(NodeError::InvalidRecord(e)) => return Err(RemoteError::Invalid(e)),
            Err(e) => return Err(RemoteError::Unreachable(e.to_string())),
        };
        if answer.kind != "device" {
            return Err(RemoteError::Unreachable(format!(
                "{device} is a {}, not a device",
                answer.kind
            )));
        }
        let gateway = answer
            .gateway
            .as_deref()
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| RemoteError::Invalid("device record without a gateway".into()))?;
        Ok((
            gateway,
            parse_addrs(answer.addrs.iter().map(String::as_str)),
        ))
    }

    /// A connection proven by `device`'s key.
    pub(super) async fn connect(&self, device: &PublicKey) -> Result<Connection, RemoteError> {
        let (gateway, addrs) = self.locate(device).await?;
        self.dialer
            .get_or_dial(device, &gateway, &addrs)
            .await
            .map_err(|e| RemoteError::Unreachable(e.to_string()))
    }

    /// A connection to `device`'s gateway (proven by the gateway's key),
    /// shared with the DHT and with every other device of that gateway:
    /// what long-lived subscriptions use. Answers are still signed by the
    /// device, and the device record (counter-signed) names this gateway.
    pub(super) async fn connect_gateway(
        &self,
        device: &PublicKey,
    ) -> Result<Connection, RemoteError> {
        let (gateway, addrs) = self.locate(device).await?;
        // A new connection is served by the node too: the gateway may
        // send DHT requests on it.
        self.dialer
            .get_or_dial(&gateway, &gateway, &addrs)
            .await
            .map_err(|e| RemoteError::Unreachable(e.to_string()))
    }

    /// `request` sealed by us for `device`.
    pub(super) fn seal(
        &self,
        device: &PublicKey,
        request: &Request,
    ) -> Result<Vec<u8>, RemoteError> {
        let kind = match request {
            Request::Read { .. } => Kind::Read,
            Request::Command { .. } => Kind::Command,
            Request::Subscribe { .. } => Kind::Subscribe,
        };
        self.session
            .seal(kind, device, &request.encode(device))
            .map_err(|e| RemoteError::Invalid(e.to_string()))
    }

    /// Opens an answer that `device` must have signed for us.
    pub(super) fn open_answer(
        &self,
        device: &PublicKey,
        bytes: &[u8],
    ) -> Result<Answer, RemoteError> {
        let from = self
            .session
            .open_from(device, bytes)
            .map_err(|e| RemoteError::Invalid(e.to_string()))?;
        match Answer::decode(from.opened()).map_err(|e| RemoteError::Invalid(e.to_string()))? {
            Answer::Error { code, message } => Err(RemoteError::Refused { code, message }),
            answer => Ok(answer),
        }
    }

    /// One request, one answer.
    async fn exchange(&self, device: &PublicKey, request: &Request) -> Result<Answer, RemoteError> {
        let work = async {
            let conn = self.connect(device).await?;
            // Sealed once connected: the stamp is then in the network's
            // time even if this connection is how we learned it.
            let env = self.seal(device, request)?;
            let (mut send, mut recv) = conn
                .quic()
                .open_bi()
                .await
                .map_err(|e| RemoteError::Unreachable(e.to_string()))?;
            write_frame(&mut send, &env)
                .await
                .map_err(|e| RemoteError::Unreachable(e.to_string()))?;
            let _ = send.finish();
            let answer = read_frame(&mut recv, self.max_frame())
                .await
                .map_err(|e| RemoteError::Unreachable(e.to_string()))?
                .ok_or_else(|| RemoteError::Unreachable("the device closed the stream".into()))?;
            self.open_answer(device, &answer)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| RemoteError::Unreachable("timed out".into()))?
    }

    /// The device's latest readings, each verified with its key.
    pub(crate) async fn read(
        &self,
        device: &PublicKey,
        point: Option<String>,
    ) -> Result<Vec<ReadingView>, RemoteError> {
        match self.exchange(device, &Request::Read { point }).await? {
            Answer::Readings(list) => {
                verify_readings(&list, device, &self.network, self.max_frame())
                    .into_iter()
                    .map(|r| r.map_err(|e| RemoteError::Invalid(e.to_string())))
                    .collect()
            }
            other => Err(RemoteError::Invalid(format!("unexpected answer {other:?}"))),
        }
    }

    /// Sets `point` of `device`; the device's signed confirmation of the
    /// value it applied.
    pub(crate) async fn write(
        &self,
        device: &PublicKey,
        point: &str,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, RemoteError> {
        let mut cbor = Vec::new();
        coset::cbor::into_writer(value, &mut cbor)
            .map_err(|e| RemoteError::Invalid(e.to_string()))?;
        let value: coset::cbor::Value = coset::cbor::from_reader(cbor.as_slice())
            .map_err(|e| RemoteError::Invalid(e.to_string()))?;
        let request = Request::Command {
            point: point.to_owned(),
            value,
        };
        match self.exchange(device, &request).await? {
            Answer::CommandResult { point: p, value } if p == point => Ok(value_to_json(value)),
            other => Err(RemoteError::Invalid(format!("unexpected answer {other:?}"))),
        }
    }
}
