//! Helpers for the bench binaries in `tests/benches/`: the local API spoken
//! directly (no CLI process per request), and readings from `/proc`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// `GET path` on the agent's API socket: status code and body. One
/// HTTP/1.1 request per connection (`Connection: close`), no process spawn.
pub fn api_get(socket: &Path, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(40)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: streembit\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Context switches (voluntary + involuntary) summed over every thread of
/// `pid`: each one is a wake-up of some thread.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .map(|t| {
            let text = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
            text.lines()
                .filter(|l| {
                    l.starts_with("voluntary_ctxt_switches")
                        || l.starts_with("nonvoluntary_ctxt_switches")
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system) of `pid` so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The `p` quantile (0..=1) of sorted values.
pub fn quantile<T: Copy>(sorted: &[T], p: f64) -> T {
    let i = ((sorted.len() as f64) * p) as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Answers one frame per stream with the same bytes, on every connection
/// `ep` accepts (as its own identity), until it closes.
pub fn serve_echo(ep: std::sync::Arc<streembit_agent::internals::transport::Endpoint>) {
    use streembit_agent::internals::transport::{read_frame, write_frame, Answer};
    tokio::spawn(async move {
        while let Some(incoming) = ep.incoming().await {
            let ep = ep.clone();
            tokio::spawn(async move {
                let Ok(conn) = ep.handshake(incoming, Answer::OwnOnly).await else {
                    return;
                };
                while let Ok((mut send, mut recv)) = conn.quic().accept_bi().await {
                    if let Ok(Some(frame)) = read_frame(&mut recv, 1024).await {
                        let _ = write_frame(&mut send, &frame).await;
                        let _ = send.finish();
                    }
                }
            });
        }
    });
}
