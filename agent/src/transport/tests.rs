//! Real QUIC sockets on loopback: handshakes, membership, framing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::framing::{read_frame, request, write_frame};
use super::membership::Refusal;
use super::*;
use crate::identity::{Keypair, PublicKey};
use crate::wire::NetworkId;

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn acme_allowlist(keys: impl IntoIterator<Item = PublicKey>) -> Membership {
    Membership::private(&"acme".parse().expect("network id"), keys, None)
}

fn node(seed: u8, membership: Membership, network: &str) -> (Arc<Keypair>, Endpoint) {
    let key = Arc::new(Keypair::from_seed(&[seed; 32]));
    let net: NetworkId = network.parse().expect("network id");
    let ep = Endpoint::bind(
        key.clone(),
        membership,
        &TransportConfig::new(loopback(), net),
    )
    .expect("bind");
    (key, ep)
}

/// Serves one echo exchange per accepted connection until closed; returns
/// how many connections were accepted. Answers as hosted devices only to
/// addresses that already completed a handshake, as the node does.
fn serve_echo(ep: Arc<Endpoint>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut accepted = 0;
        let mut proven = std::collections::HashSet::new();
        while let Some(incoming) = ep.incoming().await {
            let from = incoming.remote_address();
            let answer = if proven.contains(&from) {
                Answer::Hosted
            } else {
                Answer::OwnOnly
            };
            let Ok(conn) = ep.handshake(incoming, answer).await else {
                continue;
            };
            proven.insert(from);
            accepted += 1;
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = conn.quic().accept_bi().await {
                    if let Ok(Some(frame)) = read_frame(&mut recv, 1024).await {
                        let mut answer = conn.peer().key().as_bytes().to_vec();
                        answer.extend_from_slice(&frame);
                        let _ = write_frame(&mut send, &answer).await;
                        let _ = send.finish();
                    }
                }
            });
        }
        accepted
    })
}

#[tokio::test]
async fn handshake_proves_both_keys_and_carries_frames() {
    let (server_key, server) = node(1, Membership::public(), "public");
    let (client_key, client) = node(2, Membership::public(), "public");
    let server = Arc::new(server);
    let addr = server.local_addr().expect("addr");
    let task = serve_echo(server.clone());

    let conn = tokio::time::timeout(WAIT, client.dial(&server_key.public(), addr))
        .await
        .expect("in time")
        .expect("dial");
    assert_eq!(conn.peer().key(), server_key.public());
    let answer = request(&conn, b"hello", 1024, WAIT)
        .await
        .expect("request")
        .expect("answer");
    // The server saw our proven key.
    assert_eq!(&answer[..32], client_key.public().as_bytes());
    assert_eq!(&answer[32..], b"hello");

    server.close(0, "done");
    assert_eq!(task.await.expect("join"), 1);
}

#[tokio::test]
async fn dialing_the_wrong_key_is_refused() {
    let (_, server) = node(1, Membership::public(), "public");
    let (_, client) = node(2, Membership::public(), "public");
    let server = Arc::new(server);
    let addr = server.local_addr().expect("addr");
    let task = serve_echo(server.clone());

    let someone_else = Keypair::from_seed(&[9; 32]).public();
    let result = tokio::time::timeout(WAIT, client.dial(&someone_else, addr))
        .await
        .expect("in time");
    assert!(result.is_err());
    // The server has no certificate for that name: it refuses and counts.
    assert_eq!(
        server
            .membership()
            .refusals()
            .get(Refusal::UnknownServerName),
        1
    );
    server.close(0, "done");
    assert_eq!(task.await.expect("join"), 0);
}

#[tokio::test]
async fn a_gateway_answers_for_its_devices_by_server_name() {
    let (gateway_key, gateway) = node(1, Membership::public(), "public");
    let device = Arc::new(Keypair::from_seed(&[7; 32]));
    gateway
        .add_identity(device.clone())
        .expect("device identity");
    let gateway = Arc::new(gateway);
    let addr = gateway.local_addr().expect("addr");
    let task = serve_echo(gateway.clone());
    let (_, client) = node(2, Membership::public(), "public");

    // Cold, a hosted device's name is refused exactly as a key that is
    // not hosted: a prober learns nothing and costs no signature.
    let hosted = client
        .dial(&device.public(), addr)
        .await
        .expect_err("a device is not answered to an unproven address");
    let absent = Keypair::from_seed(&[9; 32]).public();
    let not_hosted = client
        .dial(&absent, addr)
        .await
        .expect_err("no such identity");
    assert_eq!(hosted.to_string(), not_hosted.to_string());
    let refusals = gateway.membership().refusals();
    assert_eq!(refusals.get(Refusal::DeviceNameUnproven), 1);
    assert_eq!(refusals.get(Refusal::UnknownServerName), 1);

    // Once this address holds a verified connection, the device answers.
    let conn2 = client
        .dial(&gateway_key.public(), addr)
        .await
        .expect("dial gateway");
    assert_eq!(conn2.peer().key(), gateway_key.public());
    let conn = client
        .dial(&device.public(), addr)
        .await
        .expect("dial device");
    assert_eq!(
        conn.peer().key(),
        device.public(),
        "handshake proven by the device key"
    );
    // An answer on each proves the gateway accepted both.
    for c in [&conn, &conn2] {
        assert!(request(c, b"x", 1024, WAIT)
            .await
            .expect("request")
            .is_some());
    }
    gateway.close(0, "done");
    assert_eq!(task.await.expect("join"), 2);
}

#[tokio::test]
async fn private_network_refuses_outsiders_in_the_handshake() {
    let insider_a = Keypair::from_seed(&[1; 32]).public();
    let insider_b = Keypair::from_seed(&[2; 32]).public();
    let (_, server) = node(1, acme_allowlist([insider_a, insider_b]), "acme");
    let (_, insider) = node(2, acme_allowlist([insider_a, insider_b]), "acme");
    let (_, outsider) = node(3, acme_allowlist([insider_a]), "acme");
    let server = Arc::new(server);
    let addr = server.local_addr().expect("addr");
    let task = serve_echo(server.clone());

    for _ in 0..5 {
        // TLS 1.3: the client may finish its half before the server has
        // checked the client certificate, so the refusal can surface at
        // dial or at the first request; either way nothing gets through.
        let attempt = async {
            let conn = outsider.dial(&insider_a, addr).await?;
            request(&conn, b"x", 1024, WAIT).await
        };
        let r = tokio::time::timeout(WAIT, attempt).await.expect("in time");
        // Whichever it surfaced at, the outsider is told why.
        assert!(
            matches!(r, Err(TransportError::Refused(PeerRefusal::NotAdmitted))),
            "outsider: {r:?}"
        );
    }
    let ok = insider.dial(&insider_a, addr).await.expect("insider dial");
    assert!(request(&ok, b"x", 1024, WAIT).await.expect("req").is_some());

    assert_eq!(
        server.membership().refusals().get(Refusal::NotAllowlisted),
        5
    );
    server.close(0, "done");
    assert_eq!(
        task.await.expect("join"),
        1,
        "only the insider was accepted"
    );
}

/// Issue 18, "session resumption": a resumed TLS 1.3 handshake skips the
/// certificate check, so a key removed from the allowlist could come
/// back on a ticket from before. No tickets are issued or used.
#[tokio::test]
async fn a_removed_member_cannot_come_back_by_resuming_a_session() {
    let member = Keypair::from_seed(&[2; 32]).public();
    let (server_key, server) = node(1, acme_allowlist([member]), "acme");
    let server = Arc::new(server);
    let addr = server.local_addr().expect("addr");
    let task = serve_echo(server.clone());
    let (_, client) = node(2, acme_allowlist([server_key.public()]), "acme");

    let first = client
        .dial(&server_key.public(), addr)
        .await
        .expect("member dial");
    assert!(request(&first, b"x", 1024, WAIT)
        .await
        .expect("req")
        .is_some());
    first.close(0, "done");
    assert!(server.membership().replace_allowlist([]).contains(&member));

    for _ in 0..3 {
        let attempt = async {
            let conn = client.dial(&server_key.public(), addr).await?;
            request(&conn, b"x", 1024, WAIT).await
        };
        let r = tokio::time::timeout(WAIT, attempt).await.expect("in time");
        assert!(r.is_err(), "a removed member got an answer");
    }
    assert_eq!(
        server.membership().refusals().get(Refusal::NotAllowlisted),
        3,
        "every attempt checked in full"
    );
    server.close(0, "done");
    assert_eq!(task.await.expect("join"), 1);
}

#[tokio::test]
async fn different_networks_never_complete_a_handshake() {
    let (key, server) = node(1, Membership::public(), "public");
    let (_, client) = node(2, Membership::public(), "acme");
    let server = Arc::new(server);
    let addr = server.local_addr().expect("addr");
    let task = serve_echo(server.clone());
    let r = tokio::time::timeout(WAIT, client.dial(&key.public(), addr))
        .await
        .expect("in time");
    assert!(r.is_err());
    server.close(0, "done");
    assert_eq!(task.await.expect("join"), 0);
    assert_eq!(server.membership().refusals().get(Refusal::WrongNetwork), 1);
}

#[tokio::test]
async fn oversize_frames_are_refused_before_reading_the_body() {
    let (key, server) = node(1, Membership::public(), "public");
    let (_, client) = node(2, Membership::public(), "public");
    let server = Arc::new(server);
    let addr = server.local_addr().expect("addr");
    let s = server.clone();
    let reader = tokio::spawn(async move {
        let conn = s
            .accept(Answer::OwnOnly)
            .await
            .expect("incoming")
            .expect("handshake");
        let (_send, mut recv) = conn.quic().accept_bi().await.expect("stream");
        read_frame(&mut recv, 100).await
    });
    let conn = client.dial(&key.public(), addr).await.expect("dial");
    let (mut send, _recv) = conn.quic().open_bi().await.expect("open");
    // Announce 4 GiB - 1; send only a little.
    send.write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("write");
    send.write_all(b"abc").await.expect("write");
    let got = reader.await.expect("join");
    assert!(
        matches!(got, Err(TransportError::FrameTooLarge { len, max: 100 }) if len == u32::MAX as usize)
    );
}

/// A relay between A and B, with the session set up by hand (the NAT
/// service does this over QUIC): A reaches B's echo through the relay,
/// the handshake still proves B's key, and garbage or strangers' frames
/// sent to the relay are counted and dropped without disturbing it.
#[tokio::test]
async fn a_relay_carries_one_session_and_drops_everything_else() {
    let net: NetworkId = "public".parse().expect("network id");
    let mut cfg = TransportConfig::new(loopback(), net);
    cfg.relay = Some(relay::RelayLimits::default());
    let relay_key = Arc::new(Keypair::from_seed(&[30; 32]));
    let relay = Endpoint::bind(relay_key, Membership::public(), &cfg).expect("bind relay");
    let (_, a) = node(31, Membership::public(), "public");
    let (b_key, b) = node(32, Membership::public(), "public");
    let b = Arc::new(b);
    let echo = serve_echo(b.clone());
    let (ra, aa, ba) = (
        relay.local_addr().expect("addr"),
        a.local_addr().expect("addr"),
        b.local_addr().expect("addr"),
    );
    let sid = 0x5eb_0001;
    relay
        .paths()
        .forwarder()
        .expect("a relay")
        .open(
            sid,
            (a.key(), aa),
            (b_key.public(), ba),
            std::time::Instant::now(),
        )
        .expect("session");
    let virt_b = a.paths().add_session(ra, sid);
    b.paths().add_session(ra, sid);
    assert!(socket::is_virtual(&virt_b));

    // Garbage, an unknown session, and a stranger using the real one.
    let stranger = std::net::UdpSocket::bind(loopback()).expect("bind");
    let mut known = vec![socket::FRAME_RELAY];
    known.extend_from_slice(&sid.to_be_bytes());
    known.extend_from_slice(&[0xC0; 40]);
    let mut unknown = known.clone();
    unknown[1] ^= 0xFF;
    for d in [
        &[][..],
        &[0x00],
        &[0x00; 5],
        &[0x3f, 1, 2],
        &unknown,
        &known,
    ] {
        stranger.send_to(d, ra).expect("send");
    }

    let conn = tokio::time::timeout(WAIT, a.dial(&b_key.public(), virt_b))
        .await
        .expect("in time")
        .expect("relayed handshake");
    assert_eq!(conn.peer().key(), b_key.public());
    assert_eq!(
        a.path_of(&conn),
        socket::Path::Relayed { relay: ra },
        "A sees the relayed path"
    );
    let answer = tokio::time::timeout(WAIT, request(&conn, b"through", 1024, WAIT))
        .await
        .expect("in time")
        .expect("request")
        .expect("answer");
    assert_eq!(&answer[32..], b"through");

    let f = relay.paths().forwarder().expect("a relay").counters();
    assert!(
        f.packets.load(Ordering::Relaxed) >= 4,
        "handshake + request"
    );
    assert_eq!(f.dropped_unknown.load(Ordering::Relaxed), 1);
    assert_eq!(f.dropped_wrong_source.load(Ordering::Relaxed), 1);
    assert_eq!(relay.paths().counters().dropped.load(Ordering::Relaxed), 4);
    assert!(a.paths().counters().relayed_out.load(Ordering::Relaxed) > 0);
    assert!(b.paths().counters().relayed_in.load(Ordering::Relaxed) > 0);
    conn.close(0, "done");
    b.close(0, "done");
    let _ = echo.await;
}

/// Issue 18: admission by credential alone, in real handshakes: members
/// and a gateway's devices get in with no list anywhere; an outsider, a
/// credential from another network's admin, a forged one and an expired
/// one are refused in the handshake and counted by reason; a revocation
/// list shuts the door on a member who got in before.
#[tokio::test]
async fn credentials_admit_members_and_devices_with_no_list() {
    use crate::wire::membership::{Credential, Revocations, Role};
    use crate::wire::UnixMillis;

    let acme: NetworkId = "acme".parse().expect("network id");
    let admin = Keypair::from_seed(&[50; 32]);
    let gate = || {
        let authority = Authority::new(vec![admin.public()], 1).expect("authority");
        Membership::private(&acme, [], Some(authority))
    };
    let credential = |seed: u8, role: Role, expires: Option<u64>, by: &Keypair| {
        Credential {
            network: "acme".into(),
            subject: Keypair::from_seed(&[seed; 32]).public(),
            role,
            issued: UnixMillis(1),
            expires: expires.map(UnixMillis),
            serial: u64::from(seed),
        }
        .sign(&[by])
    };
    let node_with = |seed: u8, credential: Option<Vec<u8>>| {
        let key = Arc::new(Keypair::from_seed(&[seed; 32]));
        let mut cfg = TransportConfig::new(loopback(), acme.clone());
        cfg.credential = credential;
        let ep = Endpoint::bind(key.clone(), gate(), &cfg).expect("bind");
        (key, ep)
    };

    let (gateway_key, gateway) = node_with(51, Some(credential(51, Role::Gateway, None, &admin)));
    let device = Arc::new(Keypair::from_seed(&[52; 32]));
    gateway.add_identity(device.clone()).expect("device");
    let gateway = Arc::new(gateway);
    let addr = gateway.local_addr().expect("addr");
    let task = serve_echo(gateway.clone());

    // A member: the gateway, then (on the proven address) its device.
    let (_, member) = node_with(53, Some(credential(53, Role::Member, None, &admin)));
    let conn = member
        .dial(&gateway_key.public(), addr)
        .await
        .expect("member dial");
    assert!(request(&conn, b"x", 1024, WAIT)
        .await
        .expect("req")
        .is_some());
    let to_device = member
        .dial(&device.public(), addr)
        .await
        .expect("device dial");
    assert!(request(&to_device, b"x", 1024, WAIT)
        .await
        .expect("req")
        .is_some());

    // Refused, each for its own reason.
    let other_admin = Keypair::from_seed(&[60; 32]);
    let mut forged = credential(57, Role::Member, None, &admin);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let cases = [
        (54, None, Refusal::NotAllowlisted),
        (
            55,
            Some(credential(55, Role::Member, None, &other_admin)),
            Refusal::UntrustedIssuer,
        ),
        (57, Some(forged), Refusal::BadCredential),
        (
            58,
            Some(credential(58, Role::Member, Some(2), &admin)),
            Refusal::CredentialExpired,
        ),
    ];
    for (seed, cred, reason) in cases {
        let (_, client) = node_with(seed, cred);
        let attempt = async {
            let conn = client.dial(&gateway_key.public(), addr).await?;
            request(&conn, b"x", 1024, WAIT).await
        };
        let r = tokio::time::timeout(WAIT, attempt).await.expect("in time");
        assert!(
            matches!(r, Err(TransportError::Refused(PeerRefusal::NotAdmitted))),
            "{reason:?}: {r:?}"
        );
        assert_eq!(gateway.membership().refusals().get(reason), 1, "{reason:?}");
    }

    // Revoked: the member's next handshake is refused.
    let list = Revocations {
        network: "acme".into(),
        seq: 1,
        issued: UnixMillis(3),
        revoked: [Keypair::from_seed(&[53; 32]).public()]
            .into_iter()
            .collect(),
    }
    .sign(&[&admin]);
    assert_eq!(
        gateway
            .membership()
            .apply_revocations(&list)
            .expect("applied")
            .len(),
        1
    );
    conn.close(0, "done");
    let attempt = async {
        let conn = member.dial(&gateway_key.public(), addr).await?;
        request(&conn, b"x", 1024, WAIT).await
    };
    let r = tokio::time::timeout(WAIT, attempt).await.expect("in time");
    assert!(r.is_err(), "a revoked member got an answer: {r:?}");
    assert_eq!(gateway.membership().refusals().get(Refusal::Revoked), 1);
    gateway.close(0, "done");
    assert_eq!(
        task.await.expect("join"),
        2,
        "the member, to the gateway and its device"
    );
}
