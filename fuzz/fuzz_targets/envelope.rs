//! The envelope decoder on arbitrary bytes: never panics, and anything it
//! accepts must be exactly what was sealed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use streembit_agent::identity::Keypair;
use streembit_agent::wire::{
    self, Audience, Kind, NetworkId, Opener, UnixMillis, WireConfig, WireError,
};

const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

/// The receiver's and the sender's keys, derived once.
fn keys() -> &'static (Keypair, Keypair) {
    static KEYS: OnceLock<(Keypair, Keypair)> = OnceLock::new();
    KEYS.get_or_init(|| (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32])))
}

fuzz_target!(|data: &[u8]| {
    let (me, sender) = keys();
    // A fresh opener per input, with a small replay window: the default
    // one preallocates room for 32,768 envelopes, which cost more than
    // everything else here and held the target to ~700 inputs/s.
    let config = WireConfig {
        replay_capacity: 16,
        ..WireConfig::default()
    };
    let mut opener = Opener::new(NetworkId::public(), me.node_id(), config, UnixMillis(0));

    // 1. Arbitrary bytes: an error or a valid envelope, never a panic.
    match opener.open(data, NOW) {
        Ok(opened) => {
            // Accepted means the signature held: re-checking must agree.
            let again =
                wire::verify_signature(data, usize::MAX, Some(&Audience::Node(me.node_id())));
            assert_eq!(
                again.map(|o| o.payload().to_vec()),
                Ok(opened.payload().to_vec())
            );
        }
        Err(e) => {
            let _ = e.reason();
        }
    }

    // 2. Round trip: what we seal, we open, byte for byte.
    let nonce = data.len() as u64;
    match wire::seal(
        sender,
        &NetworkId::public(),
        Kind::Reading,
        Audience::Anyone,
        data,
        NOW,
        nonce,
    ) {
        Ok(env) => match opener.open(&env, NOW) {
            Ok(opened) => {
                assert_eq!(opened.payload(), data);
                assert_eq!(opened.sender(), sender.public());
                assert_eq!(opened.nonce(), nonce);
            }
            Err(WireError::Oversize { .. }) => {
                assert!(env.len() > WireConfig::default().max_envelope_bytes)
            }
            // The same length twice in one process is the same nonce.
            Err(WireError::Replayed) => {}
            Err(e) => panic!("own envelope refused: {e}"),
        },
        Err(e) => assert!(matches!(e, WireError::Oversize { .. }), "{e}"),
    }
});
