//! The web console in a real browser (issue 21, item 3): headless Chromium
//! driven over WebDriver (Debian's chromium and chromium-driver, the
//! selenium client, `tests/py/console_check.py`) against a gateway with a
//! simulated MQTT plug on a real mosquitto. The pages load with no console
//! errors, a plot has points, a value updates live, a device anywhere is
//! read and verified by key, and a refused write says why. Screenshots of
//! each page go to `target/console-screenshots/` (kept by CI).

use std::path::PathBuf;

use streembit_tests::harness::agent_process::{eventually, gateway_dir, AgentProcess};
use streembit_tests::harness::cli::stdout;
use streembit_tests::harness::ports::free_port;
use streembit_tests::harness::process::Proc;
use streembit_tests::peers::mosquitto::Broker;
use streembit_tests::peers::python;

const PLUG: &str = r#"
[mqtt]
host = "127.0.0.1"
port = {PORT}
client_id = "gw-console"

[[mqtt.devices]]
name = "plug"
# Someone else may write (RFC 8032's first test key), not this agent.
writers = ["d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"]
points = [
  { name = "power", topic = "tele/plug/SENSOR", pointer = "/ENERGY/Power", type = "float", unit = "W" },
  { name = "relay", topic = "stat/plug/POWER", type = "bool", access = "rw", command = { topic = "cmnd/plug/POWER" } },
]
"#;

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
}

#[test]
fn the_console_shows_live_verified_readings_and_explains_a_refused_write() {
    python::require(&["selenium"]);
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: run ./scripts/install-test-deps.sh"
        );
    }
    // Screenshots of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(screenshots());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let broker = rt.block_on(Broker::start());
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = gateway_dir(
        tmp.path(),
        &[(
            "plug.toml",
            &PLUG.replace("{PORT}", &broker.port.to_string()),
        )],
    );
    let web = format!("127.0.0.1:{}", free_port());
    let agent = AgentProcess::builder(&dir, "listen = \"127.0.0.1:0\"\n")
        .env("STREEMBIT_WEB__ENABLED", "true")
        .env("STREEMBIT_WEB__LISTEN", &web)
        .spawn();
    let devices: serde_json::Value =
        serde_json::from_slice(&agent.cli(&["devices", "--json"]).stdout).expect("devices");
    let device = devices[0]["key"].as_str().expect("device key").to_owned();
    // A few readings for the plot.
    let power_now = || -> Option<f64> {
        let d: serde_json::Value =
            serde_json::from_slice(&agent.cli(&["devices", "--json"]).stdout).ok()?;
        d[0]["points"]["power"]["value"].as_f64()
    };
    for power in [40.0, 41.0, 42.5] {
        rt.block_on(broker.publish(
            "tele/plug/SENSOR",
            &format!(r#"{{"ENERGY":{{"Power":{power}}}}}"#),
        ));
        eventually(&format!("power {power}"), || power_now() == Some(power));
    }
    let url = stdout(&agent.cli(&["console"]))
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(url.starts_with(&format!("http://{web}/#token=")), "{url}");

    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(python::script("console_check.py")).args([
        url.as_str(),
        screenshots().to_str().expect("path"),
        agent.key.as_str(),
        device.as_str(),
    ]);
    let mut browser = {
        let _runtime = rt.enter();
        Proc::spawn("console_check.py", &mut cmd)
    };
    rt.block_on(browser.expect_line("the first checks", |l| {
        assert!(!l.starts_with("FAILED"), "{l}");
        l == "ready"
    }));
    rt.block_on(broker.publish("tele/plug/SENSOR", r#"{"ENERGY":{"Power":77.5}}"#));
    rt.block_on(browser.send_line("published"));
    let done = rt.block_on(browser.expect_line("the end of the checks", |l| {
        assert!(!l.starts_with("FAILED"), "{l}");
        l.starts_with("{\"ok\": true")
    }));
    println!("{done}");
    for page in ["overview", "devices", "live", "any-device", "write-refused"] {
        let png = screenshots().join(format!("console-{page}.png"));
        assert!(
            std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            png.display()
        );
    }
}

/// Runs `cmd`, failing the test with its stderr unless it succeeds.
fn ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `curl -sk` (or with `--cacert`) against the console: the HTTP status.
fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn off_loopback_the_console_speaks_only_https_and_asks_a_password() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("gw");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    ok(std::process::Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=gateway",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key.to_str().expect("path"),
        "-out",
        cert.to_str().expect("path"),
    ]));
    // The password file, from the CLI, never the gateway key.
    let password_file = dir.join("console.password");
    let mut cli = std::process::Command::new(streembit_tests::harness::cli::binary());
    cli.args([
        "console",
        "password",
        "--out",
        password_file.to_str().expect("path"),
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped());
    let mut child = cli.spawn().expect("streembit console password");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("stdin"),
        b"correct horse battery\n",
    )
    .expect("write");
    assert!(child.wait().expect("wait").success());
    let mode = std::fs::metadata(&password_file)
        .expect("file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&password_file)
        .expect("read")
        .starts_with("$7$210000$"));

    let port = free_port();
    let agent = AgentProcess::builder(&dir, "listen = \"127.0.0.1:0\"\n")
        .env("STREEMBIT_WEB__ENABLED", "true")
        .env("STREEMBIT_WEB__LISTEN", &format!("0.0.0.0:{port}"))
        .env("STREEMBIT_WEB__TLS_CERT", cert.to_str().expect("path"))
        .env("STREEMBIT_WEB__TLS_KEY", key.to_str().expect("path"))
        .env(
            "STREEMBIT_WEB__PASSWORD_FILE",
            password_file.to_str().expect("path"),
        )
        .spawn();
    let base = format!("https://127.0.0.1:{port}");
    let ca = cert.to_str().expect("path");
    // HTTPS with the operator's certificate; plain HTTP gets nothing.
    assert_eq!(curl(&["--cacert", ca, &format!("{base}/")]), "200");
    assert_ne!(curl(&[&format!("http://127.0.0.1:{port}/")]), "200");
    // The API needs a login; a wrong password is refused.
    assert_eq!(
        curl(&["--cacert", ca, &format!("{base}/api/v1/status")]),
        "401"
    );
    let login = |password: &str, jar: &std::path::Path| {
        curl(&[
            "--cacert",
            ca,
            "-c",
            jar.to_str().expect("path"),
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!("{{\"password\":\"{password}\"}}"),
            &format!("{base}/login"),
        ])
    };
    let jar = dir.join("cookies");
    assert_eq!(login("wrong password", &jar), "401");
    assert_eq!(login("correct horse battery", &jar), "200");
    let cookies = std::fs::read_to_string(&jar).expect("cookies");
    // Netscape cookie-jar fields: domain, subdomains, path, secure, …
    let line = cookies
        .lines()
        .find(|l| l.contains("streembit_console"))
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert!(line.starts_with("#HttpOnly_"), "HttpOnly: {line}");
    assert_eq!(line.split('\t').nth(3), Some("TRUE"), "Secure: {line}");
    assert_eq!(
        curl(&[
            "--cacert",
            ca,
            "-b",
            jar.to_str().expect("path"),
            &format!("{base}/api/v1/status")
        ]),
        "200"
    );
    // Each refusal counted by reason.
    assert_eq!(
        agent.metric(r#"streembit_console_refused_total{reason="login"}"#),
        1
    );
    assert!(agent.metric(r#"streembit_console_refused_total{reason="no_session"}"#) >= 1);
    // The CLI's URL names HTTPS.
    assert!(
        stdout(&agent.cli(&["console"])).starts_with(&format!("https://0.0.0.0:{port}/#token="))
    );
}
