//! Hostile members of the network (issue 10): lookups while a fraction of
//! the nodes lie, and STOREs for keys a node is not responsible for.
//!
//! The liars are members like any other until the network has formed, then
//! turn (see [`Net::set_liar`]): every FIND_NODE or FIND_VALUE they receive
//! is answered with the colluding liars closest to the target. The same
//! lookups run once per path count on one network, so the figures compare
//! plain Kademlia with S/Kademlia's disjoint paths under the same attack.

use std::time::Duration;

use crate::dht::{Message, StoreRefusal};
use crate::identity::Keypair;

use super::records::sign_record;
use super::scenario::{footer, lookups_among, network, sample, Built, Params, Rate, Report};

/// Join, then `p.liars` of the nodes turn liar; lookups of honest nodes
/// from honest nodes with 1 path and with `p.paths` (at least 2); then
/// STOREs of random keys at one honest node.
pub fn lying(p: &Params) -> Report {
    lying_on(network(p, 0.0), p)
}

/// The name of the success rate measured with `paths` disjoint paths.
pub fn rate_name(paths: usize) -> &'static str {
    match paths {
        1 => "honest node found, 1 path",
        2 => "honest node found, 2 paths",
        3 => "honest node found, 3 paths",
        4 => "honest node found, 4 paths",
        _ => "honest node found, 5+ paths",
    }
}

/// [`lying`] on a lossless network built by [`network`].
pub fn lying_on(b: Built, p: &Params) -> Report {
    let mut r = Report::default();
    let disjoint = p.paths.max(2);
    r.line(format!(
        "== lying: {} nodes, {:.0}% liars answering lookups with liars, {} lookups per path count (1 and {}), seed {} ==",
        p.nodes,
        p.liars * 100.0,
        p.lookups,
        disjoint,
        p.seed
    ));
    r.text.push_str(&b.text);
    let mut net = b.net;
    let all: Vec<usize> = (1..p.nodes).collect();
    let liars = sample(&mut net, &all, (p.nodes as f64 * p.liars) as usize);
    for &l in &liars {
        net.set_liar(l);
    }
    let honest: Vec<usize> = (0..p.nodes).filter(|&i| !net.is_liar(i)).collect();
    r.line(format!(
        "{} liars, {} honest nodes",
        liars.len(),
        honest.len()
    ));
    for paths in [1, disjoint] {
        net.set_lookup_paths(paths);
        lookups_among(&mut net, &honest, p.lookups, &mut r, rate_name(paths));
    }
    net.set_lookup_paths(p.paths);
    stores_at_random_keys(&mut net, &honest, &mut r);
    footer(&net, &mut r);
    r
}

/// A hostile peer STOREs 200 valid records under random keys directly at
/// one honest node: the node keeps only those it is among the k closest
/// to, as far as its table knows.
fn stores_at_random_keys(net: &mut super::net::Net, honest: &[usize], r: &mut Report) {
    let picked = sample(net, honest, 2);
    let (victim, attacker) = (picked[0], picked[1]);
    let before = net.node(victim).dht.counters().clone();
    let now = net.now();
    let sent = 200u64;
    for j in 0..sent {
        let mut seed = [0x5eu8; 32];
        seed[..8].copy_from_slice(&j.to_le_bytes());
        let kp = Keypair::from_seed(&seed);
        let record = sign_record(&kp, 1, now, now + Duration::from_secs(3600), 32);
        net.inject(attacker, victim, Message::Store { rid: j, record });
    }
    net.run_until(net.now() + Duration::from_secs(5));
    let c = net.node(victim).dht.counters();
    let refused = |k| {
        c.store_refused.get(&k).copied().unwrap_or(0)
            - before.store_refused.get(&k).copied().unwrap_or(0)
    };
    let not_closest = refused(StoreRefusal::NotClosest);
    let accepted = c.store_accepted - before.store_accepted;
    r.line(format!(
        "{sent} STOREs of random keys at one node: {accepted} accepted (keys it is among the k closest to), {not_closest} refused as not closest, {} refused otherwise",
        c.store_refused_total() - before.store_refused_total() - not_closest
    ));
    r.rate_line(
        "random-key STOREs refused as not closest",
        Rate {
            ok: not_closest,
            total: sent,
        },
    );
}
