//! What a gateway pays per reading, and what a receiver pays per burst,
//! side by side with raw ed25519-dalek in the same run.
//!
//! `cargo bench -p streembit-agent --bench readings`
//!
//! 1. Signed, queued readings per second on one core, 100 devices in turn:
//!    each reading sealed by its device's key (`devices::seal_reading`,
//!    the collector's path) and appended to that device's store-and-forward
//!    queue for one subscriber (on disk, as in the agent), against raw
//!    `SigningKey::sign` of the same payload size. Rounds alternate.
//! 2. Verifying bursts of 64 readings: one batch check
//!    (`protocol::verify_readings`) against 64 single checks
//!    (`protocol::verify_reading`), same envelopes.
//!
//! Medians of the rounds, and the ratios of the medians.

use std::hint::black_box;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use streembit_agent::identity::Keypair;
use streembit_agent::internals::devices::{next_seq, seal_reading, Outboxes};
use streembit_agent::internals::devices::{verify_reading, verify_readings};
use streembit_agent::wire::{
    open_published, open_published_batch, NetworkId, Sealer, UnixMillis, DEFAULT_MAX_ENVELOPE_BYTES,
};
use streembit_bridges::{Quality, Reading, Value};

const DEVICES: usize = 100;
const ROUNDS: usize = 21;
const PER_ROUND: usize = 2000;
const BURST: usize = 64;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn reading(i: usize) -> Reading {
    Reading {
        device: format!("meter-{:03}", i % DEVICES),
        point: "voltage".to_owned(),
        value: Some(Value::Float(230.0 + (i % 17) as f64 / 10.0)),
        unit: Some("V".to_owned()),
        quality: Quality::Good,
        timestamp: 1_800_000_000_000 + i as u64,
    }
}

fn main() {
    let net = NetworkId::public();
    let keys: Vec<Keypair> = (0..DEVICES)
        .map(|i| Keypair::from_seed(&[i as u8 + 1; 32]))
        .collect();
    let raw_keys: Vec<SigningKey> = (0..DEVICES)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let outboxes = Outboxes::open(
        dir.path(),
        64 * 1024 * 1024,
        16,
        std::time::Duration::from_secs(30 * 24 * 3600),
        streembit_agent::clock::Clock::system(),
    );
    let subscriber = Keypair::from_seed(&[200; 32]).public();
    // One subscriber per device, so every reading is queued once.
    for k in &keys {
        outboxes
            .ensure_queue(&k.public(), &subscriber)
            .expect("queue");
    }
    let mut sealer = Sealer::with_nonce(net.clone(), 1);
    let mut seqs = vec![0u64; DEVICES];
    let sample = seal_reading(&mut sealer, &keys[0], &reading(0), 1, UnixMillis(1)).expect("seal");
    let raw_msg = vec![0x5a; sample.len() / 2];

    let (mut raw, mut ours, mut sign_only) = (Vec::new(), Vec::new(), Vec::new());
    let mut n = 0usize;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..PER_ROUND {
            black_box(raw_keys[i % DEVICES].sign(black_box(&raw_msg)));
        }
        raw.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());

        let t = Instant::now();
        for _ in 0..PER_ROUND {
            let d = n % DEVICES;
            let now = UnixMillis(1_800_000_000_000 + n as u64);
            let seq = next_seq(seqs[d], now);
            let env = seal_reading(&mut sealer, &keys[d], &reading(n), seq, now).expect("seal");
            black_box(&env);
            seqs[d] = seq;
            n += 1;
        }
        sign_only.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());

        let t = Instant::now();
        for _ in 0..PER_ROUND {
            let d = n % DEVICES;
            let now = UnixMillis(1_800_000_000_000 + n as u64);
            let seq = next_seq(seqs[d], now);
            let env = seal_reading(&mut sealer, &keys[d], &reading(n), seq, now).expect("seal");
            outboxes.append(&keys[d].public(), seq, &env);
            seqs[d] = seq;
            n += 1;
        }
        ours.push(PER_ROUND as f64 / t.elapsed().as_secs_f64());
    }
    let (raw, sealed, queued) = (median(&mut raw), median(&mut sign_only), median(&mut ours));
    println!(
        "signing, one core, {DEVICES} devices, {} B envelopes:",
        sample.len()
    );
    println!("  raw ed25519-dalek sign        {raw:>9.0} /s");
    println!(
        "  sealed readings               {sealed:>9.0} /s  ({:.2}x raw)",
        sealed / raw
    );
    println!(
        "  sealed + queued on disk       {queued:>9.0} /s  ({:.2}x raw)",
        queued / raw
    );

    // Bursts of one device's readings, as a subscriber receives them (the
    // agent sends up to 128 per frame).
    let device = &keys[0];
    for burst_len in [16, BURST, 128, 256] {
        let burst: Vec<Vec<u8>> = (0..burst_len)
            .map(|i| {
                seal_reading(
                    &mut sealer,
                    device,
                    &reading(i * DEVICES),
                    i as u64 + 1,
                    UnixMillis(1),
                )
                .expect("seal")
            })
            .collect();
        let reps = 1280 / burst_len;
        let (mut single, mut batch) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..reps {
                for env in &burst {
                    let r = verify_reading(env, &device.public(), &net, DEFAULT_MAX_ENVELOPE_BYTES);
                    assert!(r.is_ok());
                }
            }
            single.push(t.elapsed().as_secs_f64() * 1e6 / (reps * burst_len) as f64);
            let t = Instant::now();
            for _ in 0..reps {
                let all =
                    verify_readings(&burst, &device.public(), &net, DEFAULT_MAX_ENVELOPE_BYTES);
                assert!(all.iter().all(Result::is_ok));
            }
            batch.push(t.elapsed().as_secs_f64() * 1e6 / (reps * burst_len) as f64);
        }
        // The signature layer alone: open_published against its batch form.
        let refs: Vec<&[u8]> = burst.iter().map(Vec::as_slice).collect();
        let (mut env_single, mut env_batch) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..reps {
                for env in &refs {
                    assert!(open_published(env, &net, DEFAULT_MAX_ENVELOPE_BYTES).is_ok());
                }
            }
            env_single.push(t.elapsed().as_secs_f64() * 1e6 / (reps * burst_len) as f64);
            let t = Instant::now();
            for _ in 0..reps {
                let all = open_published_batch(&refs, &net, DEFAULT_MAX_ENVELOPE_BYTES);
                assert!(all.iter().all(Result::is_ok));
            }
            env_batch.push(t.elapsed().as_secs_f64() * 1e6 / (reps * burst_len) as f64);
        }
        let (es, eb) = (median(&mut env_single), median(&mut env_batch));
        let (single, batch) = (median(&mut single), median(&mut batch));
        println!("verifying bursts of {burst_len} readings, per reading:");
        println!(
            "  envelopes: one by one {es:>6.1} µs, batch {eb:>6.1} µs ({:.3}x)",
            eb / es
        );
        println!("  readings (decode + checks): one by one {single:>6.1} µs");
        println!(
            "  readings (decode + checks): batch {batch:>6.1} µs ({:.3}x)",
            batch / single
        );
    }
}
