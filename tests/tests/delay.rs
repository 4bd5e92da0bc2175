//! 20 agents on loopback whose every datagram crosses a lossy UDP proxy
//! adding 100 ± 20 ms one way and dropping 20% (issue 10, item 3). No root
//! needed: the proxy stands in for `netem`, which this kernel lacks.

use std::time::Duration;

use streembit_tests::harness::agent_process::AgentProcess;
use streembit_tests::harness::ports::free_port;
use streembit_tests::labs::lossy_proxy::{Link, LossyProxy};

#[test]
fn twenty_agents_behind_100ms_delay_and_twenty_percent_loss_find_each_other() {
    const N: usize = 20;
    let tmp = tempfile::tempdir().expect("tmp");
    let backends: Vec<std::net::SocketAddr> = (0..N)
        .map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let proxy = LossyProxy::new(
        &backends,
        Link {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
            loss: 0.20,
        },
    );
    let mut nodes: Vec<AgentProcess> = Vec::new();
    for (i, (backend, front)) in backends.iter().zip(&proxy.fronts).enumerate() {
        let seeds = match nodes.first() {
            Some(s) => format!("\"{}@{}\"", s.key, proxy.fronts[0]),
            None => String::new(),
        };
        let cfg = format!("listen = \"{backend}\"\nannounce = [\"{front}\"]\nseeds = [{seeds}]\n");
        nodes.push(
            AgentProcess::builder(&tmp.path().join(format!("n{i}")), &cfg)
                .log("warn,streembit_agent=info")
                .spawn(),
        );
    }
    for n in nodes.iter_mut() {
        n.wait_published(5);
    }
    let fronts = &proxy.fronts;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let nodes = &nodes;
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for j in (0..N).filter(|&j| j != i) {
                        let out = nodes[i].cli(&["lookup", &nodes[j].key, "--json"]);
                        let v: Option<serde_json::Value> = out
                            .status
                            .success()
                            .then(|| serde_json::from_slice(&out.stdout).ok())
                            .flatten();
                        match v {
                            Some(v) if v["addrs"][0] == fronts[j].to_string().as_str() => {}
                            other => bad.push(format!("{i} -> {j}: {other:?}")),
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("lookup thread"))
            .collect()
    });
    let total = N * (N - 1);
    let ok = total - failures.len();
    let (forwarded, dropped) = proxy.counts();
    eprintln!(
        "FIGURE delay: {ok}/{total} lookups ({:.2}%) with 100 ± 20 ms one way and 20% loss through the proxy ({forwarded} datagrams forwarded, {dropped} dropped)",
        100.0 * ok as f64 / total as f64
    );
    assert!(dropped > 0, "the proxy dropped nothing");
    assert!(
        ok * 100 >= total * 99,
        "{} of {total} lookups failed: {failures:?}",
        failures.len()
    );
}
