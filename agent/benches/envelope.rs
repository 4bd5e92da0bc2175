//! Envelope cost, side by side with raw Ed25519 in the same run.
//!
//! `cargo bench -p streembit-agent --bench envelope`
//!
//! 1. seal + open of one envelope with a 64-byte payload vs ed25519-dalek
//!    sign + verify_strict of the same 64 bytes. Rounds alternate between
//!    the two so machine noise hits both alike; we report the median
//!    per-operation time of each and the ratio of the medians.
//! 2. open() throughput while the replay window holds 100,000 senders.

use std::hint::black_box;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use streembit_agent::identity::Keypair;
use streembit_agent::wire::{Audience, Kind, NetworkId, Opener, Sealer, UnixMillis, WireConfig};

const ROUNDS: usize = 31;
const PER_ROUND: usize = 400;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let payload = [0xa5u8; 64];
    let seed = [7u8; 32];
    let dalek = SigningKey::from_bytes(&seed);
    let dalek_pub = dalek.verifying_key();
    let key = Keypair::from_seed(&seed);
    let receiver = Keypair::from_seed(&[8; 32]);
    let mut sealer = Sealer::with_nonce(NetworkId::public(), 1);
    let mut opener = Opener::new(
        NetworkId::public(),
        receiver.node_id(),
        WireConfig::default(),
        UnixMillis(0),
    );
    let mut clock = 1_800_000_000_000u64;

    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..PER_ROUND {
            let sig = dalek.sign(black_box(&payload));
            let ok = dalek_pub.verify_strict(black_box(&payload), &sig).is_ok();
            assert!(ok);
        }
        raw.push(t.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64);

        let t = Instant::now();
        for _ in 0..PER_ROUND {
            clock += 1;
            let now = UnixMillis(clock);
            let env = sealer
                .seal(
                    &key,
                    Kind::Reading,
                    Audience::Anyone,
                    black_box(&payload),
                    now,
                )
                .expect("seal");
            let opened = opener.open(black_box(&env), now).expect("open");
            black_box(opened);
        }
        ours.push(t.elapsed().as_secs_f64() * 1e6 / PER_ROUND as f64);
    }
    let (raw_us, ours_us) = (median(&mut raw), median(&mut ours));
    println!(
        "seal+open vs raw sign+verify, 64-byte payload, median of {ROUNDS} rounds x {PER_ROUND}:"
    );
    println!("  raw ed25519-dalek sign+verify_strict: {raw_us:8.2} us/op");
    println!("  streembit seal+open:                  {ours_us:8.2} us/op");
    println!(
        "  ratio ours/raw:                       {:8.3}",
        ours_us / raw_us
    );

    // Replay window with 100,000 senders: fill it, then time fresh opens.
    const SENDERS: usize = 100_000;
    let cfg = WireConfig {
        replay_capacity: SENDERS + PER_ROUND,
        ..WireConfig::default()
    };
    let mut opener = Opener::new(NetworkId::public(), receiver.node_id(), cfg, UnixMillis(0));
    let now = UnixMillis(1_800_000_000_000);
    let fill = Instant::now();
    for i in 0..SENDERS {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let k = Keypair::from_seed(&s);
        let env = sealer
            .seal(&k, Kind::Reading, Audience::Anyone, &payload, now)
            .expect("seal");
        opener.open(&env, now).expect("open");
    }
    let fill_s = fill.elapsed().as_secs_f64();
    let held = opener.replay_window().len();
    assert_eq!(held, SENDERS);
    let envs: Vec<Vec<u8>> = (0..PER_ROUND)
        .map(|_| {
            sealer
                .seal(&key, Kind::Reading, Audience::Anyone, &payload, now)
                .expect("seal")
        })
        .collect();
    let mut rates = Vec::new();
    for chunk in envs.chunks(PER_ROUND / 8) {
        let t = Instant::now();
        for env in chunk {
            black_box(opener.open(env, now).expect("open"));
        }
        rates.push(chunk.len() as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "open() with the replay window holding {} senders ({:.1} MiB): median {:.0} opens/s (filling it: {:.1} s incl. keygen)",
        held,
        opener.replay_window().memory_bytes() as f64 / (1 << 20) as f64,
        median(&mut rates),
        fill_s
    );
}
