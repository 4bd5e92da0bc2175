//! A peer that presents a certificate for key X when dialed as Y is refused.
//!
//! The impostor is a bare quinn + rustls server that ignores the server
//! name and always answers with X's certificate — something our own
//! endpoint never does, so it is built here from the parts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use quinn::crypto::rustls::QuicServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use streembit_agent::identity::Keypair;
use streembit_agent::internals::transport::{alpn_for, certified_key};
use streembit_agent::wire::NetworkId;
use streembit_tests::harness::agent_process::AgentProcess;

#[derive(Debug)]
struct AlwaysX(Arc<CertifiedKey>);

impl ResolvesServerCert for AlwaysX {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[test]
fn a_certificate_for_another_key_is_refused() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let x = Arc::new(Keypair::generate());
    let y = Keypair::generate().public();
    let established = Arc::new(AtomicUsize::new(0));

    let (addr, server) = rt.block_on(async {
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(AlwaysX(
            certified_key(x.clone(), &[]).expect("cert"),
        )));
        tls.alpn_protocols = vec![alpn_for(&NetworkId::public())];
        let crypto = QuicServerConfig::try_from(tls).expect("quic tls");
        let server = quinn::Endpoint::server(
            quinn::ServerConfig::with_crypto(Arc::new(crypto)),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .expect("bind");
        (server.local_addr().expect("addr"), server)
    });
    let counter = established.clone();
    let accept = server.clone();
    rt.spawn(async move {
        while let Some(incoming) = accept.accept().await {
            if let Ok(connecting) = incoming.accept() {
                if connecting.await.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });

    // A real agent told that Y lives at the impostor's address.
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = format!("listen = \"127.0.0.1:0\"\nseeds = [\"{y}@{addr}\"]\n");
    let mut agent = AgentProcess::start(&tmp.path().join("a"), &cfg);
    let joined = agent.wait_for("joined", |m| m.contains("joined:"));
    assert!(joined.contains("joined: 0 contacts"), "{joined}");
    assert!(agent.metric("streembit_handshakes_refused_total{reason=\"wrong_key\"}") >= 1);
    assert_eq!(agent.metric("streembit_dht_table_size"), 0);
    assert!(agent.peers().is_empty());
    server.close(0u32.into(), b"done");
    assert_eq!(
        established.load(Ordering::SeqCst),
        0,
        "the handshake completed"
    );
}
