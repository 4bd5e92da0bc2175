//! Core tests: properties of the routing table, the simulator at N = 1,000,
//! and the sans-IO source check.

mod util;

use crate::dht::sim::{Net, NetConfig};
use crate::dht::{Event, Outcome};
use std::time::Duration;

#[test]
fn debug_small() {
    let mut net = Net::new(
        NetConfig {
            loss: 0.1,
            ..NetConfig::default()
        },
        1,
    );
    net.add_node();
    for _ in 1..300 {
        let t = net.now() + Duration::from_millis(50);
        net.run_until(t);
        let n = net.add_node();
        net.join(n, 0);
    }
    net.run_until(net.now() + Duration::from_secs(60));
    let ids: Vec<_> = (0..300).map(|i| *net.contact(i).id()).collect();
    let known: Vec<usize> = ids
        .iter()
        .map(|id| {
            (0..300)
                .filter(|&j| net.node(j).dht.table().contains(id))
                .count()
        })
        .collect();
    let mut miss = 0;
    for l in 0..300usize {
        let from = (l * 7) % 300;
        let to = (l * 13 + 5) % 300;
        if from == to {
            continue;
        }
        let q = net.find_node(from, ids[to]);
        net.run_while(net.now() + Duration::from_secs(60), |n| {
            !n.is_finished(from, q)
        });
        if let Some(Event::QueryFinished {
            outcome: Outcome::Nodes { closest, target },
            stats,
            ..
        }) = net.take_result(from, q)
        {
            if target.is_none() {
                miss += 1;
                let mut all: Vec<usize> = (0..300).collect();
                all.sort_by_key(|&j| ids[j].distance(&ids[to]));
                let close_know: Vec<bool> = all[1..21]
                    .iter()
                    .map(|&j| net.node(j).dht.table().contains(&ids[to]))
                    .collect();
                let got: Vec<usize> = closest
                    .iter()
                    .map(|c| all.iter().position(|&j| ids[j] == *c.id()).unwrap_or(999))
                    .collect();
                println!("miss {from}->{to}: known by {} ; closest know {:?}; result ranks {:?} stats {:?}", known[to], close_know.iter().filter(|b| **b).count(), got, stats);
            }
        } else {
            println!("unfinished");
        }
    }
    println!("miss {miss}");
}
