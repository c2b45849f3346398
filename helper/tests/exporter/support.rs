//! The exporter's test kit: the exporter and a real Prometheus server as child processes (killed
//! on drop, and with the test if it dies), raw HTTP/1.0 requests, PromQL queries.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const HELPER: &str = env!("CARGO_BIN_EXE_memmon-helper");
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_memmon-workload");

/// Debian's packages (scripts/setup.sh installs them); a missing one fails the test.
pub fn require(tool: &str) -> &str {
    assert!(
        Path::new(tool).exists(),
        "{tool} is missing: run `bash scripts/setup.sh` (apt packages prometheus and \
         python3-prometheus-client)"
    );
    tool
}

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";
/// Debian's python3 (its python3-prometheus-client), not whatever `python3` is first on PATH.
pub const PYTHON: &str = "/usr/bin/python3";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Makes `cmd`'s child die with the thread that spawned it (a failed test leaves nothing).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// A child process killed and reaped on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` as is and reads the answer until the server closes.
pub fn raw(port: u16, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(request)?;
    let mut all = Vec::new();
    match stream.read_to_end(&mut all) {
        Ok(_) => {}
        // The server may close while the rest of an oversized request is still unsent.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !all.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {all:?}")))?;
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok(Response {
        status,
        head,
        body: all[split + 4..].to_vec(),
    })
}

/// `GET path` over HTTP/1.0 (so the body is never chunked), with extra header lines.
pub fn get(port: u16, path: &str, headers: &str) -> Response {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n");
    raw(port, request.as_bytes()).unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"))
}

/// `memmon-helper export` on a free loopback port, ready (its first collection served).
pub struct Exporter {
    pub port: u16,
    pub child: Guard,
}

impl Exporter {
    pub fn start(extra: &[&str]) -> Exporter {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = die_with_parent(
            Command::new(HELPER)
                .args(["export", "--listen", &listen, "--interval", "1"])
                .args(extra)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null()),
        )
        .spawn()
        .expect("spawn memmon-helper export");
        let mut exporter = Exporter {
            port,
            child: Guard(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = exporter.child.0.try_wait().expect("wait") {
                panic!("the exporter exited: {status}");
            }
            if raw(port, b"GET /metrics HTTP/1.0\r\n\r\n").is_ok_and(|r| r.status == 200) {
                return exporter;
            }
            assert!(
                Instant::now() < deadline,
                "the exporter did not serve within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn metrics(&self, accept: Option<&str>) -> Response {
        self.metrics_with(&accept.map_or(String::new(), |a| format!("Accept: {a}\r\n")))
    }

    /// `GET /metrics` with these header lines (each ending in CRLF); asserts 200.
    pub fn metrics_with(&self, headers: &str) -> Response {
        let res = get(self.port, "/metrics", headers);
        assert_eq!(res.status, 200, "{}", res.head);
        res
    }
}

/// Debian's Prometheus with a temporary data directory, on loopback, scraping `targets` every
/// second and evaluating the shipped rules every second.
pub struct Prometheus {
    pub port: u16,
    child: Guard,
    dir: PathBuf,
}

impl Prometheus {
    pub fn start(exporter_port: u16) -> Prometheus {
        require(PROMETHEUS);
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("memmon-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let rules = repo_root().join("packaging/prometheus/memmon.rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: memmon\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
            rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let child = die_with_parent(
            Command::new(PROMETHEUS)
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log),
        )
        .spawn()
        .expect("spawn prometheus");
        let prometheus = Prometheus {
            port,
            child: Guard(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !raw(port, b"GET /-/ready HTTP/1.0\r\n\r\n").is_ok_and(|r| r.status == 200) {
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready within 60 s: {}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// GET on Prometheus' HTTP API; the parsed JSON's `data`.
    pub fn api(&self, path_and_query: &str) -> serde_json::Value {
        let res = get(self.port, path_and_query, "");
        let json: serde_json::Value = serde_json::from_slice(&res.body)
            .unwrap_or_else(|e| panic!("{path_and_query}: {e}: {}", res.text()));
        assert_eq!(json["status"], "success", "{path_and_query}: {json}");
        json["data"].clone()
    }

    /// An instant PromQL query: its result vector.
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(expr)));
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of a query with one result (None when it has none).
    pub fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr);
        assert!(result.len() <= 1, "{expr}: {result:?}");
        result.first().map(sample_value)
    }

    /// Polls `expr` every 500 ms until `done` accepts its result, or panics after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        expr: &str,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr);
            if done(&result) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; `{expr}` gave {result:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Before its data directory goes (the guard itself drops only after this body).
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn sample_value(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {sample}"))
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `VmRSS` of a process, KiB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Root is needed (cgroups, eBPF): false (skipped, said so) for a user outside CI; on CI a
/// panic.
pub fn can_run_as_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = format!("{what} needs root");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}, and CI=true: refusing to skip");
    }
    eprintln!("SKIPPED: {why}");
    false
}
