//! The pymodbus server of `tests/py/modbus_server.py`, driven over stdin.

use std::path::Path;

use tokio::process::Command;

use crate::harness::process::Proc;
use crate::peers::python::script;

/// A pymodbus server serving device ids on a serial port or TCP port.
#[derive(Debug)]
pub struct ModbusServer {
    /// The process; killed on drop.
    pub proc: Proc,
}

impl ModbusServer {
    /// Serves `ids` with RTU framing on the PTY at `port`.
    pub async fn serial(port: &Path, ids: &[u8]) -> ModbusServer {
        Self::start(&["--serial", &port.display().to_string()], ids).await
    }

    /// Serves `ids` on 127.0.0.1:`port`.
    pub async fn tcp(port: u16, ids: &[u8]) -> ModbusServer {
        Self::start(&["--tcp-port", &port.to_string()], ids).await
    }

    async fn start(args: &[&str], ids: &[u8]) -> ModbusServer {
        let ids: Vec<String> = ids.iter().map(u8::to_string).collect();
        let mut proc = Proc::spawn(
            "pymodbus server",
            Command::new("python3")
                .arg(script("modbus_server.py"))
                .args(args)
                .arg("--ids")
                .arg(ids.join(",")),
        );
        proc.expect_line("READY", |l| l == "READY").await;
        ModbusServer { proc }
    }

    async fn ask(&mut self, line: &str, want: &str) -> String {
        self.proc.send_line(line).await;
        let reply = self
            .proc
            .expect_line(want, |l| {
                l.starts_with("OK") || l.starts_with("VALUES") || l.starts_with("ERR")
            })
            .await;
        assert!(reply.starts_with(want), "{line:?} answered {reply:?}");
        reply
    }

    /// Sets registers (or bits, 0/1) of `table` (co, di, hr, ir).
    pub async fn set(&mut self, id: u8, table: &str, addr: u16, values: &[u16]) {
        let vals: Vec<String> = values.iter().map(u16::to_string).collect();
        self.ask(&format!("set {id} {table} {addr} {}", vals.join(" ")), "OK")
            .await;
    }

    /// Reads registers (or bits) of `table` from the datastore.
    pub async fn get(&mut self, id: u8, table: &str, addr: u16, count: u16) -> Vec<u16> {
        let reply = self
            .ask(&format!("get {id} {table} {addr} {count}"), "VALUES")
            .await;
        reply
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect()
    }

    /// How device `id` answers: "normal", "mute", "badcrc" or "noise".
    pub async fn mode(&mut self, id: u8, mode: &str) {
        self.ask(&format!("mode {id} {mode}"), "OK").await;
    }

    /// Device `id` answers `ms` milliseconds late (serial servers only).
    pub async fn slow(&mut self, id: u8, ms: u64) {
        self.ask(&format!("mode {id} slow {ms}"), "OK").await;
    }
}
