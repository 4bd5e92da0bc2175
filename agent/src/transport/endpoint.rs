//! The QUIC endpoint: one UDP socket, server and client at once, with TLS
//! bound to Ed25519 identities and the network's membership.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::cert::{certified_key, server_name_for};
use super::connection::{peer_refusal, Connection};
use super::membership::{Membership, Refusal};
use super::relay::{Forwarder, RelayLimits};
use super::socket::{Path, PathSocket, Paths};
use super::verify::PeerVerifier;
use super::TransportError;
use crate::clock::Clock;
use crate::identity::{Keypair, PublicKey};
use crate::wire::membership::{Credential, Role};
use crate::wire::NetworkId;

/// Protocol version carried in ALPN with the network id.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// The ALPN string for a network: `streembit/<version>/<network>`.
///
/// Both sides offer exactly one, so endpoints of different networks (or
/// protocol versions) fail the handshake with `no_application_protocol`
/// before any application data.
pub fn alpn_for(network: &NetworkId) -> Vec<u8> {
    format!("streembit/{PROTOCOL_VERSION}/{network}").into_bytes()
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// UDP address to bind.
    pub listen: SocketAddr,
    /// Network id (ALPN).
    pub network: NetworkId,
    /// Close a connection after this long without any packet.
    pub idle_timeout: Duration,
    /// Send keep-alives this often on open connections.
    pub keep_alive: Duration,
    /// Concurrent bidirectional streams a peer may open on one connection.
    /// A subscriber keeps one open per device it follows on the gateway's
    /// connection, beside the DHT's short requests, hence well above 32.
    pub max_streams_per_connection: u32,
    /// Handshakes in progress at once; more are refused (handshake floods).
    pub max_incoming: usize,
    /// Handshakes this endpoint works on at once. Past half of it, a client
    /// must first prove its address with a stateless Retry; past all of
    /// it, even proven ones are refused (see [`Endpoint::handshake`]).
    pub max_handshakes: usize,
    /// Relay for peers behind NAT, within these limits (`None`: no relay).
    pub relay: Option<RelayLimits>,
    /// Where admission checks and the socket's bookkeeping read the time.
    pub clock: Clock,
    /// This node's credential on a private network with admins, presented
    /// in every handshake after its certificate.
    pub credential: Option<Vec<u8>>,
}

impl TransportConfig {
    /// Defaults for `listen` on `network`.
    pub fn new(listen: SocketAddr, network: NetworkId) -> Self {
        Self {
            listen,
            network,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            max_streams_per_connection: 256,
            max_incoming: 256,
            max_handshakes: 64,
            relay: None,
            clock: Clock::system(),
            credential: None,
        }
    }
}

/// Which of this endpoint's identities an incoming handshake may be
/// answered as.
///
/// In TLS 1.3 the server signs as the identity asked for before it sees
/// the client's certificate, so answering a device's name to anyone would
/// tell a prober, for one packet, whether that device is hosted here, and
/// cost us a signature. The choice is therefore made from the client's
/// address, before the handshake: a hosted device answers only on an
/// address that already holds a verified connection to this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Our own key only; a hosted device's name is refused exactly as an
    /// unknown one (counted as `device_name_unproven`).
    OwnOnly,
    /// Our own key and every hosted device.
    Hosted,
}

/// The identities this endpoint answers for, by server name: the gateway
/// itself and, later, each device it hosts.
#[derive(Debug)]
struct Identities {
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    own: Arc<CertifiedKey>,
    own_name: String,
    membership: Membership,
}

/// The resolver for addresses not yet proven: our own name only.
#[derive(Debug)]
struct OwnOnly(Arc<Identities>);

impl ResolvesServerCert for OwnOnly {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        if name == Some(self.0.own_name.as_str()) {
            return Some(self.0.own.clone());
        }
        let hosted = name.is_some_and(|n| {
            self.0
                .by_name
                .read()
                .map(|m| m.contains_key(n))
                .unwrap_or(false)
        });
        self.0.membership.refusals().count(if hosted {
            Refusal::DeviceNameUnproven
        } else {
            Refusal::UnknownServerName
        });
        None
    }
}

impl ResolvesServerCert for Identities {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello
            .server_name()
            .and_then(|n| self.by_name.read().ok()?.get(n).cloned());
        if found.is_none() {
            self.membership.refusals().count(Refusal::UnknownServerName);
        }
        found
    }
}

impl ResolvesClientCert for Identities {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        sigschemes
            .contains(&SignatureScheme::ED25519)
            .then(|| self.own.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// One QUIC endpoint for this node.
pub struct Endpoint {
    quic: quinn::Endpoint,
    identities: Arc<Identities>,
    /// Server settings answering as every identity ([`Answer::Hosted`]);
    /// the endpoint's default answers as its own only.
    hosted: Arc<quinn::ServerConfig>,
    membership: Membership,
    own: PublicKey,
    /// Signs our devices' credentials (private networks).
    own_key: Arc<Keypair>,
    /// Our own credential, which follows each device's in its chain.
    own_credential: Option<Vec<u8>>,
    network: NetworkId,
    clock: Clock,
    handshakes: Arc<tokio::sync::Semaphore>,
    max_handshakes: usize,
    paths: Arc<Paths>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("own", &self.own)
            .field("private", &self.membership.is_private())
            .finish()
    }
}

impl Endpoint {
    /// Binds a UDP socket and serves as `key` on `config.network`,
    /// admitting the peers `membership` admits. Needs a tokio runtime.
    pub fn bind(
        key: Arc<Keypair>,
        membership: Membership,
        config: &TransportConfig,
    ) -> Result<Self, TransportError> {
        let own = key.public();
        let own_chain: Vec<Vec<u8>> = config.credential.iter().cloned().collect();
        let own_cert = certified_key(key.clone(), &own_chain)?;
        let own_name = server_name_for(&own);
        let identities = Arc::new(Identities {
            by_name: RwLock::new(HashMap::from([(own_name.clone(), own_cert.clone())])),
            own: own_cert,
            own_name,
            membership: membership.clone(),
        });
        let verifier = PeerVerifier::new(membership.clone(), config.clock.clone());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let alpn = vec![alpn_for(&config.network)];

        let mut client_tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TransportError::Local(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(identities.clone());
        client_tls.alpn_protocols = alpn.clone();
        client_tls.enable_early_data = false;
        client_tls.resumption = rustls::client::Resumption::disabled();

        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
            .map_err(|e| TransportError::Local(format!("idle timeout: {e}")))?;
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(config.keep_alive))
            .max_concurrent_bidi_streams(config.max_streams_per_connection.into())
            .max_concurrent_uni_streams(0u32.into());
        let transport = Arc::new(transport);

        let server_for = |resolver: Arc<dyn ResolvesServerCert>| {
            let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| TransportError::Local(format!("TLS versions: {e}")))?
                .with_client_cert_verifier(verifier.clone())
                .with_cert_resolver(resolver);
            tls.alpn_protocols = alpn.clone();
            tls.max_early_data_size = 0;
            // No resumption: a resumed TLS 1.3 handshake restores the
            // client certificate of the first one without asking the
            // verifier, so a key removed from the membership could come
            // back on an old ticket. Every handshake is checked in full.
            tls.send_tls13_tickets = 0;
            tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            let crypto = QuicServerConfig::try_from(tls)
                .map_err(|e| TransportError::Local(format!("QUIC server TLS: {e}")))?;
            let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
            server.transport_config(transport.clone());
            server.max_incoming(config.max_incoming);
            server.migration(false);
            Ok::<_, TransportError>(server)
        };
        let server = server_for(Arc::new(OwnOnly(identities.clone())))?;
        let hosted = Arc::new(server_for(identities.clone())?);

        let client_crypto = QuicClientConfig::try_from(client_tls)
            .map_err(|e| TransportError::Local(format!("QUIC client TLS: {e}")))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);

        let bind_err = |source| TransportError::Bind {
            addr: config.listen,
            source,
        };
        let socket = std::net::UdpSocket::bind(config.listen).map_err(bind_err)?;
        let (socket, paths) = PathSocket::new(
            socket,
            config.relay.clone().map(Forwarder::new),
            config.clock.clone(),
        )
        .map_err(bind_err)?;
        // No greasing of the fixed bit: a datagram with both high bits
        // clear is then never QUIC, which is how relay frames share the
        // socket (socket.rs).
        let mut endpoint_cfg = quinn::EndpointConfig::default();
        endpoint_cfg.grease_quic_bit(false);
        let mut quic = quinn::Endpoint::new_with_abstract_socket(
            endpoint_cfg,
            Some(server),
            Arc::new(socket),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_err)?;
        quic.set_default_client_config(client);
        let max_handshakes = config.max_handshakes.max(2);
        Ok(Self {
            quic,
            identities,
            hosted,
            membership,
            own,
            own_key: key,
            own_credential: config.credential.clone(),
            network: config.network.clone(),
            clock: config.clock.clone(),
            handshakes: Arc::new(tokio::sync::Semaphore::new(max_handshakes)),
            max_handshakes,
            paths,
        })
    }

    /// Our key.
    pub fn key(&self) -> PublicKey {
        self.own
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        self.quic
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
    }

    /// The socket's paths: relayed sessions, the relay table, probes.
    pub fn paths(&self) -> &Arc<Paths> {
        &self.paths
    }

    /// How `conn` reaches its peer.
    pub fn path_of(&self, conn: &Connection) -> Path {
        self.paths.path_of(&conn.quic().remote_address())
    }

    /// Who may take part (the policy and its refusal counts).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Also answers, by server name, as `key` (a hosted device). On a
    /// private network the device presents a device credential signed by
    /// this gateway, followed by the gateway's own credential: that is how
    /// a gateway admits its devices, with no device key listed anywhere.
    pub fn add_identity(&self, key: Arc<Keypair>) -> Result<(), TransportError> {
        let name = server_name_for(&key.public());
        let mut chain = Vec::new();
        if self.membership.is_private() {
            let credential = Credential {
                network: self.network.as_str().to_owned(),
                subject: key.public(),
                role: Role::Device,
                issued: self.clock.wall(),
                expires: None,
                serial: 0,
            };
            chain.push(credential.sign(&[&self.own_key]));
            chain.extend(self.own_credential.iter().cloned());
        }
        let ck = certified_key(key, &chain)?;
        if let Ok(mut map) = self.identities.by_name.write() {
            map.insert(name, ck);
        }
        Ok(())
    }

    /// Stops answering as `key` (a device no longer hosted). Our own
    /// identity cannot be removed.
    pub fn remove_identity(&self, key: &PublicKey) {
        if *key == self.own {
            return;
        }
        if let Ok(mut map) = self.identities.by_name.write() {
            map.remove(&server_name_for(key));
        }
    }

    /// Dials `peer` at `addr`; succeeds only if the server proves `peer`'s
    /// key (and the membership admits `peer`).
    pub async fn dial(
        &self,
        peer: &PublicKey,
        addr: SocketAddr,
    ) -> Result<Connection, TransportError> {
        self.paths.note_contact(addr);
        let connecting = self
            .quic
            .connect(addr, &server_name_for(peer))
            .map_err(|e| TransportError::Local(format!("cannot dial {addr}: {e}")))?;
        let conn = connecting.await.map_err(|e| {
            peer_refusal(&e).unwrap_or_else(|| TransportError::Handshake(e.to_string()))
        })?;
        let conn = Connection::from_quic(conn)?;
        if conn.peer().key() != *peer {
            // The verifier already refuses this; kept as a second line.
            conn.close(1, "wrong key");
            return Err(TransportError::BadCertificate(
                "server key differs from the one dialed".into(),
            ));
        }
        Ok(conn)
    }

    /// Waits for the next incoming connection and completes its handshake.
    /// `None` once the endpoint is closed. A failed handshake is counted
    /// and returned as an error.
    pub async fn accept(&self, answer: Answer) -> Option<Result<Connection, TransportError>> {
        let incoming = self.quic.accept().await?;
        Some(self.handshake(incoming, answer).await)
    }

    /// The next connection attempt, before its handshake: servers that must
    /// not wait on one slow handshake spawn [`Endpoint::handshake`] for each.
    pub async fn incoming(&self) -> Option<quinn::Incoming> {
        self.quic.accept().await
    }

    /// Completes the handshake of an incoming connection, answering as the
    /// identities `answer` allows; failures are counted by reason.
    ///
    /// Handshake floods: every accepted attempt costs a certificate
    /// signature and connection state until it completes or times out, and
    /// replayed or spoofed Initial packets cost the sender nothing. So at
    /// most `max_handshakes` run at once. Once half of them are taken, a
    /// client whose address is not yet proven gets a stateless Retry (one
    /// packet, no state kept): a real client answers it at once, a replayed
    /// Initial never does, and since unproven clients can never hold more
    /// than half the slots, proven ones always find room. With every slot
    /// taken, even a proven client is refused; both are counted as `busy`.
    pub async fn handshake(
        &self,
        incoming: quinn::Incoming,
        answer: Answer,
    ) -> Result<Connection, TransportError> {
        let proven = incoming.remote_address_validated();
        let free = self.handshakes.available_permits();
        let permit = if !proven && free <= self.max_handshakes / 2 {
            None
        } else {
            self.handshakes.clone().try_acquire_owned().ok()
        };
        let Some(_permit) = permit else {
            self.membership.refusals().count(Refusal::Busy);
            if !proven && incoming.may_retry() {
                // Err: Retry impossible for this packet; dropped, as refused.
                let _ = incoming.retry();
            } else {
                incoming.refuse();
            }
            return Err(TransportError::Handshake("busy".into()));
        };
        // The ClientHello arrives in the first packet, so ALPN and other
        // early failures already surface from `accept()`.
        let accepted = match answer {
            Answer::OwnOnly => incoming.accept(),
            Answer::Hosted => incoming.accept_with(self.hosted.clone()),
        };
        let result = match accepted {
            Ok(connecting) => connecting.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(conn) => {
                self.paths.note_contact(conn.remote_address());
                Connection::from_quic(conn)
            }
            Err(e) => {
                tracing::debug!(error = %e, "incoming handshake failed");
                self.count_failure(&e);
                Err(TransportError::Handshake(e.to_string()))
            }
        }
    }

    /// Handshake failures the verifiers did not already count.
    fn count_failure(&self, e: &quinn::ConnectionError) {
        let refusals = self.membership.refusals();
        let counted_by_verifier = |code: quinn::TransportErrorCode| {
            // access_denied (allowlist), decode_error (bad certificate),
            // handshake_failure (unknown server name): see verify.rs.
            [49u8, 50, 40]
                .iter()
                .any(|a| code == quinn::TransportErrorCode::crypto(*a))
        };
        match e {
            quinn::ConnectionError::TransportError(t)
                if t.code == quinn::TransportErrorCode::crypto(120) =>
            {
                refusals.count(Refusal::WrongNetwork)
            }
            quinn::ConnectionError::TransportError(t) if counted_by_verifier(t.code) => {}
            _ => refusals.count(Refusal::HandshakeFailed),
        }
    }

    /// Stops accepting and closes every connection with `code`.
    pub fn close(&self, code: u32, reason: &str) {
        self.quic.close(code.into(), reason.as_bytes());
    }

    /// Waits until every connection has been closed cleanly (bounded by the
    /// peers' idle timeout).
    pub async fn wait_idle(&self) {
        self.quic.wait_idle().await;
    }
}
