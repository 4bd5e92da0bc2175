//! The Debian package and the unit under a real systemd (issue 20): a
//! Debian 12 container booted with systemd as PID 1
//! ([`streembit_tests::labs::container`]), the amd64 .deb installed with
//! apt so its maintainer scripts run live, and everything an operator
//! relies on checked there: READY and the STATUS line, reload that returns
//! only once done, the watchdog under SIGSTOP, restart after kill -9 with
//! the same identity, the syscall filter under real work (a pymodbus
//! Modbus TCP device, an MQTT device, a second agent subscribing over
//! QUIC) with filtered syscalls made fatal, `streembit status` by group,
//! the journal's priorities, stop, remove and purge, then the README's
//! from-source install and `systemd-analyze verify`.
//!
//! It needs the package: `scripts/test.sh` runs it after `scripts/deb.sh`
//! (`cargo test -p streembit-tests --test systemd_container -- --ignored`),
//! which is why it is `#[ignore]`d in the plain `cargo test` run. Root
//! only; skips with `SKIPPED:` where the machine cannot boot systemd.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use streembit_tests::labs::container::{repo, target_dir, Container};

/// Generous bound for anything systemd does in the container.
const SOON: Duration = Duration::from_secs(60);

/// The amd64 package scripts/deb.sh built.
fn amd64_deb() -> PathBuf {
    let dir = target_dir().join("debian");
    std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("streembit_") && n.ends_with("_amd64.deb"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no streembit_*_amd64.deb in {}: run scripts/cross-aarch64.sh and \
                 scripts/deb.sh first (scripts/test.sh does)",
                dir.display()
            )
        })
}

struct Steps {
    started: Instant,
}

impl Steps {
    fn step(&self, what: &str) {
        eprintln!("== [{:6.1} s] {what}", self.started.elapsed().as_secs_f64());
    }
}

/// `systemctl show -p PROP --value streembit`.
fn show(ct: &Container, prop: &str) -> String {
    ct.sh(&format!("systemctl show -p {prop} --value streembit"))
}

/// Waits until the service is active (running) again with a main pid
/// other than `old_pid`, after at least `restarts` restarts.
fn await_restart(ct: &Container, old_pid: &str, restarts: u32) -> String {
    ct.wait_for(
        "the service restarted",
        SOON,
        &format!(
            "[ \"$(systemctl show -p NRestarts --value streembit)\" -ge {restarts} ] && \
             [ \"$(systemctl show -p SubState --value streembit)\" = running ] && \
             pid=$(systemctl show -p MainPID --value streembit) && \
             [ \"$pid\" != 0 ] && [ \"$pid\" != {old_pid} ] && echo $pid"
        ),
    )
}

/// The gateway's public key, asked through the running agent.
fn agent_key(ct: &Container) -> String {
    let json = ct.sh("streembit status --json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("status json");
    v["key"].as_str().expect("key").to_owned()
}

#[test]
#[ignore = "needs the .deb: scripts/test.sh runs it after scripts/deb.sh"]
fn the_package_under_a_real_systemd() {
    let deb = amd64_deb();
    let s = Steps {
        started: Instant::now(),
    };
    let Some(ct) = Container::boot("streembit-ct") else {
        return;
    };
    s.step("booted");
    ct.put(&deb, "/srv/streembit.deb", 0o644);
    ct.put(
        &repo().join("tests/py/modbus_server.py"),
        "/root/modbus_server.py",
        0o755,
    );

    // ---- Install: postinst runs live, the service starts through READY.
    s.step("apt install the .deb");
    let out = ct.exec("apt-get install -y /srv/streembit.deb 2>&1");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "apt install failed:\n{said}");
    assert!(
        !said.contains("can't be accessed") && !said.contains("Warning: The home dir"),
        "adduser warns:\n{said}"
    );
    ct.wait_for(
        "active (running) after install",
        SOON,
        "systemctl is-active streembit",
    );
    assert_eq!(show(&ct, "Type"), "notify");
    assert_eq!(show(&ct, "SubState"), "running");
    let groups = ct.sh("id -nG streembit");
    for g in ["streembit", "dialout", "i2c"] {
        assert!(groups.split_whitespace().any(|x| x == g), "{groups}");
    }
    assert_eq!(ct.sh("stat -c '%U %a' /var/lib/streembit"), "streembit 700");

    s.step("STATUS: the operator's summary, and `streembit status` says the same");
    let status = ct.wait_for(
        "the summary as STATUS",
        SOON,
        "systemctl show -p StatusText --value streembit | grep -E '^public, [0-9]+ peers? \\([0-9]+ connected\\), no devices, '",
    );
    eprintln!("STATUS={status}");
    let cli = ct.sh("streembit status");
    assert_eq!(cli.lines().next(), Some(status.as_str()), "{cli}");
    let verify = ct.sh_lenient("systemd-analyze verify streembit.service");
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify (man page installed by the .deb):\n{verify}"
    );

    s.step("`streembit status` as root, as a member of group streembit, as anyone else");
    ct.sh("useradd --create-home --groups streembit member && useradd --create-home outsider");
    ct.sh("runuser -u member -- streembit status");
    let out = ct.exec("runuser -u outsider -- streembit status");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("permission denied: add yourself to group streembit"),
        "{err}"
    );

    s.step("PKCS#8 v1 keys: Debian's openssl reads the identity, same public key");
    let key = agent_key(&ct);
    let from_openssl = ct.sh(
        "openssl pkey -in /var/lib/streembit/identity.pem -pubout -outform DER | \
         tail -c 32 | od -An -tx1 | tr -d ' \\n'",
    );
    assert_eq!(from_openssl, key);

    // ---- A drop-in for the rest: a short watchdog, filtered syscalls
    // fatal (SIGSYS) instead of EPERM, an unknown STREEMBIT_ variable, and
    // an announced address for the peer below.
    s.step("drop-in: WatchdogSec=2s, SystemCallErrorNumber= (kill), STREEMBIT_BOGUS");
    ct.write(
        "/etc/systemd/system/streembit.service.d/test.conf",
        "[Service]\nWatchdogSec=2s\nRestartSec=1s\nTimeoutStopSec=5s\n\
         SystemCallErrorNumber=\nEnvironment=STREEMBIT_BOGUS=1\n",
    );
    ct.sh("sed -i 's/^announce = .*/announce = [\"127.0.0.1:7470\"]/' /etc/streembit/agent.toml");
    ct.sh("systemctl daemon-reload && systemctl restart streembit");
    // systemd 252 shows "kill" as SECCOMP_ERROR_NUMBER_KILL, INT_MAX - 1.
    let errno = show(&ct, "SystemCallErrorNumber");
    assert!(
        ["", "kill", "2147483646"].contains(&errno.as_str()),
        "SystemCallErrorNumber={errno}"
    );
    // The filter kills here: a transient unit with the same filter dies of
    // SIGSYS on a syscall from @resources (setpriority).
    let control = ct.exec(
        "systemd-run --wait --quiet -p SystemCallFilter=@system-service \
         -p 'SystemCallFilter=~@privileged @resources' nice -n 5 true",
    );
    assert!(
        !control.status.success(),
        "a filtered syscall did not kill the control process"
    );
    let restarts_before: u32 = show(&ct, "NRestarts").parse().expect("NRestarts");

    s.step("journal: priorities, the unknown variable named at warning");
    ct.wait_for(
        "the warning in journalctl -p warning",
        SOON,
        "journalctl -u streembit -p warning -o cat | grep -F 'ignoring environment variable STREEMBIT_BOGUS'",
    );
    let prio = ct.sh(
        "journalctl -u streembit -o json --output-fields=PRIORITY,MESSAGE | grep -F 'agent running' | tail -n 1",
    );
    assert!(prio.contains("\"PRIORITY\":\"6\""), "{prio}");

    // ---- Real work under the filter: a Modbus TCP device (pymodbus), an
    // MQTT device on the agent's broker (mosquitto, its child under the
    // unit's hardening), a second agent subscribing over
    // QUIC.
    s.step("devices: pymodbus on 127.0.0.1:5020, an MQTT plug, reload");
    ct.sh("systemd-run --quiet --unit=modbus-sim sh -c \
         '(echo \"set 1 ir 0 215\"; exec sleep infinity) | \
          exec python3 /root/modbus_server.py --tcp-port 5020 --ids 1'");
    ct.wait_for(
        "pymodbus listening",
        SOON,
        "journalctl -u modbus-sim -o cat | grep -q READY",
    );
    ct.write(
        "/etc/streembit/bridges.d/meter.toml",
        "[modbus_tcp]\nhost = \"127.0.0.1\"\nport = 5020\n\n\
         [[modbus_tcp.devices]]\nname = \"meter\"\nunit_id = 1\npoll_ms = 200\npoints = [\n  \
         { name = \"temp\", table = \"input_register\", address = 0, type = \"i16\", scale = 0.1, unit = \"C\" },\n]\n",
    );
    ct.write(
        "/etc/streembit/bridges.d/plug.toml",
        "[mqtt]\nhost = \"127.0.0.1\"\nport = 1883\nclient_id = \"gw-plug\"\n\
         username = \"gw-plug\"\npassword = \"bridge-pw\"\n\n\
         [[mqtt.devices]]\nname = \"plug\"\nusername = \"plug\"\npassword = \"plug-pw\"\npoints = [\n  \
         { name = \"power\", topic = \"tele/plug/SENSOR\", pointer = \"/ENERGY/Power\", type = \"float\", unit = \"W\" },\n]\n",
    );
    ct.sh("systemctl reload streembit");
    // The plug logs in with its own account (the agent's mosquitto admits
    // no one else); its bridge file made it.
    ct.sh("mosquitto_pub -h 127.0.0.1 -p 1883 -u plug -P plug-pw -r -t tele/plug/SENSOR -m '{\"ENERGY\":{\"Power\":42.5}}'");
    let devices = ct.wait_for(
        "both devices online with their readings",
        SOON,
        "streembit devices --json | python3 -c '\
import json, sys\n\
d = {x[\"name\"]: x for x in json.load(sys.stdin)}\n\
assert d[\"meter\"][\"state\"] == \"online\" and d[\"meter\"][\"points\"][\"temp\"][\"value\"] == 21.5\n\
assert d[\"plug\"][\"state\"] == \"online\" and d[\"plug\"][\"points\"][\"power\"][\"value\"] == 42.5\n\
print(d[\"meter\"][\"key\"])'",
    );
    let meter = devices.trim().to_owned();
    ct.wait_for(
        "STATUS counts the devices",
        SOON,
        "systemctl show -p StatusText --value streembit | grep -F '2 devices (2 online)'",
    );

    s.step("a second agent subscribes to the meter over QUIC");
    ct.write(
        "/root/peer/agent.toml",
        &format!(
            "state_dir = \"/root/peer/state\"\nruntime_dir = \"/root/peer/run\"\n\
             listen = \"127.0.0.1:7471\"\nseeds = [\"{key}@127.0.0.1:7470\"]\n\
             [mqtt]\nembedded = false\n"
        ),
    );
    ct.sh("systemd-run --quiet --unit=peer /usr/bin/streembit run --config /root/peer/agent.toml");
    ct.wait_for(
        "the peer subscribed",
        SOON,
        &format!("streembit subscribe {meter} --config /root/peer/agent.toml"),
    );
    ct.wait_for(
        "a reading delivered to the peer",
        SOON,
        &format!("streembit inbox {meter} --json --config /root/peer/agent.toml | grep -q 21.5"),
    );
    // Several clients connect to the broker and go: ordinary disconnects.
    for i in 0..5 {
        ct.sh(&format!(
            "mosquitto_pub -h 127.0.0.1 -p 1883 -u plug -P plug-pw -i probe{i} -t probe -m x"
        ));
    }
    assert_eq!(
        show(&ct, "NRestarts").parse::<u32>().expect("NRestarts"),
        restarts_before,
        "the agent restarted under the fatal syscall filter:\n{}",
        ct.sh_lenient("journalctl -u streembit -n 30 --no-pager")
    );
    assert_eq!(ct.sh("systemctl is-active streembit"), "active");
    let errors = ct.sh_lenient("journalctl -u streembit -p err -o cat --no-pager");
    assert!(
        errors.trim().is_empty() || errors.contains("-- No entries --"),
        "errors in the journal after ordinary work:\n{errors}"
    );
    let broker = ct.sh_lenient("journalctl -u streembit -o cat | grep -ci 'mqtt broker' || true");
    eprintln!("broker lines in the journal: {}", broker.trim());

    // ---- Reload: systemctl returns only after the agent reloaded.
    s.step("40 back-to-back reloads, each done when systemctl returns");
    let early = ct.sh("early=0; for i in $(seq 40); do \
           before=$(head -n 1 /run/streembit/reloaded | cut -d' ' -f2); \
           systemctl reload streembit; \
           after=$(head -n 1 /run/streembit/reloaded | cut -d' ' -f2); \
           [ \"$after\" -gt \"$before\" ] || early=$((early + 1)); \
         done; echo $early");
    assert_eq!(
        early, "0",
        "reloads that returned before the agent reloaded"
    );

    s.step("a broken bridge file: reload fails loudly, one journal entry, the note stays");
    ct.write(
        "/etc/streembit/bridges.d/broken.toml",
        "[modbus_tcp\nhost = 1\n",
    );
    let out = ct.exec("systemctl reload streembit");
    assert!(!out.status.success(), "reload with a broken file succeeded");
    assert_eq!(ct.sh("systemctl is-active streembit"), "active");
    let entries = ct.sh(
        "journalctl -u streembit -p err -o cat | grep -F 'broken.toml' | grep -vF 'streembit: ' || true",
    );
    let agent_entries: Vec<&str> = entries.lines().collect();
    assert_eq!(agent_entries.len(), 1, "{entries}");
    assert!(agent_entries[0].contains(" ⏎ "), "{entries}");
    ct.wait_for(
        "the refusal stays in STATUS",
        SOON,
        "systemctl show -p StatusText --value streembit | grep -F 'previous versions kept'",
    );
    ct.sh("rm /etc/streembit/bridges.d/broken.toml && systemctl reload streembit");

    // ---- Watchdog and crashes: restarted, same identity.
    s.step("SIGSTOP: the watchdog restarts the agent");
    let pid = show(&ct, "MainPID");
    let stopped = Instant::now();
    ct.sh(&format!("kill -STOP {pid}"));
    let new_pid = await_restart(&ct, &pid, restarts_before + 1);
    eprintln!(
        "restarted by the watchdog in {:.1} s (WatchdogSec=2s)",
        stopped.elapsed().as_secs_f64()
    );
    ct.sh("journalctl -u streembit -o cat | grep -qi 'watchdog timeout'");
    ct.wait_for("the API again", SOON, "streembit status > /dev/null");
    assert_eq!(
        agent_key(&ct),
        key,
        "a new identity after the watchdog restart"
    );

    s.step("kill -9: restarted with the same identity");
    ct.sh(&format!("kill -9 {new_pid}"));
    await_restart(&ct, &new_pid, restarts_before + 2);
    ct.wait_for("the API again", SOON, "streembit status > /dev/null");
    assert_eq!(agent_key(&ct), key, "a new identity after kill -9");

    s.step("stop exits 0");
    ct.sh("systemctl stop streembit");
    assert_eq!(show(&ct, "Result"), "success");
    assert_eq!(show(&ct, "ExecMainStatus"), "0");
    assert_eq!(show(&ct, "ExecMainCode"), "1", "exited, not killed");

    s.step("apt remove keeps config and state; apt purge deletes them");
    ct.sh("rm /etc/systemd/system/streembit.service.d/test.conf && systemctl stop peer modbus-sim");
    ct.sh("cp /usr/bin/streembit /root/streembit.bin");
    ct.sh("apt-get remove -y streembit > /dev/null 2>&1");
    ct.sh("test -f /var/lib/streembit/identity.pem && test -f /etc/streembit/agent.toml");
    ct.sh("apt-get purge -y streembit > /dev/null 2>&1");
    // State and config go; bridge files the operator wrote stay (dpkg
    // never deletes what it did not install).
    ct.sh("! test -e /var/lib/streembit && ! test -e /etc/streembit/agent.toml");
    assert_eq!(
        ct.sh("ls /etc/streembit/bridges.d"),
        "meter.toml\nplug.toml"
    );
    ct.sh("rm -r /etc/streembit");

    // ---- From source, as the README says: the man page is installed and
    // systemd-analyze verify is clean.
    s.step("the README's from-source install");
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let block = readme
        .split("### From source")
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the README's from-source block");
    for file in [
        "systemd/streembit.service",
        "etc/agent.example.toml",
        "docs/streembit.1",
    ] {
        ct.put(&repo().join(file), &format!("/root/src/{file}"), 0o644);
    }
    ct.sh("install -D -m 0755 /root/streembit.bin /root/src/target/release/streembit");
    let script: String = block
        .lines()
        .filter(|l| !l.starts_with("cargo build"))
        .map(|l| l.replacen("sudo ", "", 1).replace("&& sudo ", "&& "))
        .collect::<Vec<_>>()
        .join("\n");
    let out = ct.exec(&format!("set -e\ncd /root/src\n{script} 2>&1"));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "from-source steps failed:\n{said}");
    assert!(
        !said.contains("can't be accessed"),
        "adduser warns:\n{said}"
    );
    ct.wait_for(
        "active after the from-source install",
        SOON,
        "systemctl is-active streembit",
    );
    ct.sh("man -w streembit");
    let verify = ct.sh_lenient("systemd-analyze verify /etc/systemd/system/streembit.service");
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify after the from-source install:\n{verify}"
    );
    s.step("done");
}

/// systemd 253 and newer: the notify-reload drop-in the package ships as an
/// example (and the Yocto recipe installs). systemd itself sends SIGHUP and
/// waits for RELOADING=1 with MONOTONIC_USEC, then READY=1; the same root
/// with systemd 254 from bookworm-backports.
#[test]
#[ignore = "needs the .deb: scripts/test.sh runs it after scripts/deb.sh"]
fn type_notify_reload_under_systemd_254() {
    let deb = amd64_deb();
    let s = Steps {
        started: Instant::now(),
    };
    let Some(ct) = Container::boot_root("streembit-ct254", &["--systemd-backports"]) else {
        return;
    };
    let version: u32 = ct
        .sh("systemctl --version | head -n 1 | cut -d' ' -f2")
        .parse()
        .expect("systemd version");
    assert!(version >= 253, "systemd {version}: no Type=notify-reload");
    s.step("apt install, then the notify-reload drop-in from the package's examples");
    ct.put(&deb, "/srv/streembit.deb", 0o644);
    ct.sh("apt-get install -y /srv/streembit.deb > /dev/null 2>&1");
    ct.wait_for(
        "active after install",
        SOON,
        "systemctl is-active streembit",
    );
    ct.sh("mkdir -p /etc/systemd/system/streembit.service.d && \
         cp /usr/share/doc/streembit/examples/notify-reload.conf \
            /etc/systemd/system/streembit.service.d/ && \
         systemctl daemon-reload && systemctl restart streembit");
    assert_eq!(show(&ct, "Type"), "notify-reload");
    assert_eq!(show(&ct, "ExecReload"), "", "the helper would signal twice");
    let verify = ct.sh_lenient("systemd-analyze verify streembit.service");
    assert!(
        verify.trim().is_empty(),
        "systemd-analyze verify:\n{verify}"
    );

    s.step("40 back-to-back reloads, systemd signalling and waiting itself");
    ct.sh("systemctl reload streembit");
    let early = ct.sh("early=0; for i in $(seq 40); do \
           before=$(head -n 1 /run/streembit/reloaded | cut -d' ' -f2); \
           systemctl reload streembit; \
           after=$(head -n 1 /run/streembit/reloaded | cut -d' ' -f2); \
           [ \"$after\" -gt \"$before\" ] || early=$((early + 1)); \
         done; echo $early");
    assert_eq!(
        early, "0",
        "reloads that returned before the agent reloaded"
    );
    assert_eq!(show(&ct, "SubState"), "running");
    assert_eq!(show(&ct, "NRestarts"), "0");
    let complaints = ct.sh_lenient("journalctl -u streembit -o cat | grep -i monotonic || true");
    assert!(complaints.trim().is_empty(), "{complaints}");
    ct.sh("systemctl stop streembit");
    assert_eq!(show(&ct, "Result"), "success");
    s.step("done");
}
