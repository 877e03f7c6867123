//! The processes the benchmark starts or reads: `covisit-server` (alone, or one node of
//! several), its `/metrics` and `/healthz` over plain HTTP, and what /proc says of any
//! process (resident memory, CPU time) and of the machine (busy cores).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

/// A server process; killed (and its folder deleted) when dropped, a failing run too.
pub struct Spawned {
    child: Child,
    dir: Option<PathBuf>,
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How to start a server.
pub struct ServerSpec {
    /// The binary (default: `covisit-server` next to this executable).
    pub bin: Option<PathBuf>,
    /// `--database`: a `postgres://` URL, or `None` for a SQLite file in a fresh folder.
    pub database: Option<String>,
    /// More arguments (`--bus redis://…`).
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
    /// Prefixes the warnings and errors of its log that are shown (`[node 2]`).
    pub label: String,
}

/// A started server: its process, its address, and its number when it is a node.
pub struct Started {
    pub process: Spawned,
    pub addr: String,
    pub node_id: Option<String>,
}

pub fn spawn_server(spec: ServerSpec) -> Result<Started, String> {
    let bin = match spec.bin {
        Some(b) => b,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("covisit-server"),
    };
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p covisit-server) or pass --server-bin / --url",
            bin.display()
        ));
    }
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("COVISIT_") {
            cmd.env_remove(k);
        }
    }
    let dir = match &spec.database {
        Some(url) => {
            cmd.arg("--database").arg(url);
            None
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("covisit-loadbench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            cmd.arg("--database").arg(dir.join("covisit.db"));
            Some(dir)
        }
    };
    let mut child = cmd
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("warn,covisit_server=info".into()),
        )
        .env("NO_COLOR", "1")
        .envs(spec.env)
        .args([
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--www",
            "/nonexistent-www",
            "--sdk-dir",
            "/nonexistent-dist",
        ])
        .args(spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let process = Spawned { child, dir };
    let (tx, rx) = std::sync::mpsc::channel();
    let label = spec.label;
    // Drains the server's log for as long as it runs (a full pipe would stall it);
    // shows warnings and errors. A node logs its number before its address.
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut node: Option<String> = None;
        let mut sent = false;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("joined the cluster") {
                node = line
                    .split("node=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_string);
            }
            if !sent {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split(':').take(2).collect::<Vec<_>>().join(":");
                    let _ = tx.send((addr, node.clone()));
                    sent = true;
                }
            }
            let notable = line.contains("WARN") || line.contains("ERROR");
            if notable && !line.contains("dev mode") && !line.contains("demo") {
                eprintln!("{label} {line}");
            }
        }
    });
    let (addr, node_id) = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "the server did not log its address".to_string())?;
    if !is_loopback(&addr) {
        return Err(format!("{addr} is not a loopback address"));
    }
    Ok(Started {
        process,
        addr,
        node_id,
    })
}

pub fn is_loopback(host: &str) -> bool {
    host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]")
}

/// A GET over loopback (HTTP/1.0, so the server closes): the status code and body.
pub async fn http_get(host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(host))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut response))
        .await
        .ok()?
        .ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// The server's /metrics text.
pub async fn scrape(host: &str) -> Option<String> {
    http_get(host, "/metrics").await.map(|(_, body)| body)
}

/// A value of a /metrics text.
pub fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A histogram of a /metrics text: its cumulative buckets (upper bound, count), its
/// sum and its count.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    pub fn read(metrics: &str, name: &str) -> Histogram {
        let bucket = format!("{name}_bucket{{le=\"");
        let buckets = metrics
            .lines()
            .filter_map(|l| {
                let (le, n) = l.strip_prefix(&bucket)?.split_once("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, n.trim().parse().ok()?))
            })
            .collect();
        Histogram {
            buckets,
            sum: value(metrics, &format!("{name}_sum")).unwrap_or(0.0),
            count: value(metrics, &format!("{name}_count")).unwrap_or(0.0),
        }
    }

    /// What was observed since `before`: the count, the mean, and the upper bound of
    /// the bucket that holds quantile `q`.
    pub fn since(&self, before: &Histogram, q: f64) -> (f64, f64, f64) {
        let count = self.count - before.count;
        let mean = if count > 0.0 {
            (self.sum - before.sum) / count
        } else {
            f64::NAN
        };
        let bound = self
            .buckets
            .iter()
            .map(|(le, n)| {
                let was = before
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |b| b.1);
                (*le, n - was)
            })
            .find(|(_, n)| count > 0.0 && *n >= q * count)
            .map_or(f64::NAN, |(le, _)| le);
        (count, mean, bound)
    }
}

/// A value of the server's /metrics.
pub async fn metric(host: &str, name: &str) -> Option<f64> {
    value(&scrape(host).await?, name)
}

/// Peak and current resident set size (kB) of a process, from /proc.
pub fn memory_kb(pid: u32) -> (Option<u64>, Option<u64>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The fields of /proc/<pid>/stat after the command's name (field 3 is the first).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    // The state (a letter) reads as 0; the rest are numbers.
    Some(
        after
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU seconds (user + system) a process used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    Some((f.get(11)? + f.get(12)?) as f64 / TICKS)
}

/// CPU seconds of a process and its children (living ones, and those it waited for):
/// PostgreSQL runs a process per connection.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    let mut ticks = f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(c) = stat_fields(child).filter(|c| c.get(1) == Some(&u64::from(pid))) {
            ticks += c.get(11).unwrap_or(&0) + c.get(12).unwrap_or(&0);
        }
    }
    Some(ticks as f64 / TICKS)
}

/// The machine's busy and total CPU time so far (all cores, in ticks).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = cpu.iter().take(8).sum();
    // idle + iowait
    let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// Percent of one core a process used between two readings `seconds` apart.
pub fn cpu_percent(before: Option<f64>, after: Option<f64>, seconds: f64) -> String {
    match (before, after) {
        (Some(a), Some(b)) if seconds > 0.0 => format!("{:.0}%", (b - a) / seconds * 100.0),
        _ => "?".into(),
    }
}

/// Milliseconds at percentile `p` of sorted µs values (NaN when empty).
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// A kB figure as MB, or `?`.
pub fn mb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.0}", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".into())
}
