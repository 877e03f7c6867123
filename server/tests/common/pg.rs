//! A throwaway PostgreSQL server for tests: [`PgServer::start`] runs one on a free
//! loopback port with its own data folder, [`PgServer::url`] says how to reach it, and
//! dropping it (a panicking test too) stops the server and deletes the folder.
//!
//! The binaries are PostgreSQL's own (`initdb`, `postgres`): `COVISIT_PG_BIN`, else the
//! newest `/usr/lib/postgresql/<major>/bin` (Debian's layout), else `initdb` on the
//! PATH; `scripts/bootstrap` installs them. `initdb` refuses to run as root, so as root
//! both run as the `postgres` user (or `nobody`) through `runuser`, in folders handed to
//! that user; as anyone else they run as is.
//!
//! `initdb` takes over a second, so it runs once into a template that every server
//! started while another is alive copies (`cp -a`); the template is deleted with the
//! last server. Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`):
//! these servers never outlive a crash of the machine; [`PgServer::start_durable`]
//! leaves it on, for figures like a real server's. Every wait is bounded. A test
//! process that dies without unwinding (SIGKILL, Ctrl-C) cannot drop anything: a small
//! `sh` guard per server and template, which wakes when the test process's end closes
//! its stdin, stops the server and deletes the folder then.
//!
//! Shared by the binary's unit tests (`src/main.rs` includes this file), the
//! integration tests (`tests/common/mod.rs`) and the load benchmark
//! (`src/bin/covisit-loadbench`), so it names nothing of any of them.
#![allow(dead_code)] // each test crate uses a different part

use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// From `postgres` spawned to accepting connections.
const START_WAIT: Duration = Duration::from_secs(30);
/// `initdb` of the template.
const INITDB_WAIT: Duration = Duration::from_secs(120);
/// From the shutdown signal to the process gone (then it is killed).
const STOP_WAIT: Duration = Duration::from_secs(10);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);
/// Ports tried when another process took the free port first.
const PORT_ATTEMPTS: usize = 5;

/// A running PostgreSQL server; stopped and its folder deleted on drop.
pub struct PgServer {
    /// Stops the server if this process dies without dropping it.
    _guard: Option<Guard>,
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
    template: Arc<Template>,
}

impl PgServer {
    /// Starts a server (superuser `postgres`, trust authentication, database
    /// `postgres`) on 127.0.0.1 and a free port. Panics, with the server's log, when
    /// it cannot.
    pub fn start() -> PgServer {
        PgServer::launch(false)
    }

    /// As [`PgServer::start`], with PostgreSQL's durability settings as they come
    /// (every commit flushed to disk): what a benchmark must pay.
    pub fn start_durable() -> PgServer {
        PgServer::launch(true)
    }

    fn launch(durable: bool) -> PgServer {
        let template = template();
        let dir = tempfile::Builder::new()
            .prefix("covisit-pg-")
            .tempdir()
            .expect("a temporary folder for PostgreSQL");
        template.tools.give(dir.path());
        let guard = Guard::spawn(
            r#"pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
            if [ -n "$pid" ]; then
                kill -QUIT "$pid" 2>/dev/null; n=0
                while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do
                    sleep 0.1; n=$((n + 1))
                done
                kill -KILL "$pid" 2>/dev/null
            fi"#,
            dir.path(),
        );
        let data = dir.path().join("data");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(template.dir.path().join("data"))
            .arg(&data)
            .status()
            .is_ok_and(|s| s.success());
        assert!(copied, "cannot copy the template PostgreSQL cluster");
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let log = File::create(dir.path().join("postgres.log")).expect("a log file");
            let mut postgres = template.tools.command("postgres");
            postgres
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string()])
                .args(["-c", "listen_addresses=127.0.0.1"])
                .arg("-k")
                .arg(dir.path());
            if !durable {
                postgres
                    .args(["-c", "fsync=off"])
                    .args(["-c", "synchronous_commit=off"])
                    .args(["-c", "full_page_writes=off"]);
            }
            let mut child = postgres
                .env("LC_ALL", "C")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("a log file handle"))
                .stderr(log)
                .spawn()
                .expect("postgres starts");
            match wait_ready(&mut child, &data, port) {
                Ok(()) => {
                    return PgServer {
                        _guard: guard,
                        port,
                        child,
                        dir,
                        template,
                    };
                }
                Err(e) => {
                    stop(&mut child, &data);
                    let log = read_log(dir.path());
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        panic!("PostgreSQL did not start: {e}\n{log}");
                    }
                }
            }
        }
        panic!("PostgreSQL found no free port in {PORT_ATTEMPTS} attempts");
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of another database of this server (see [`PgServer::create_database`]).
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id (its backends are its children).
    pub fn pid(&self) -> Option<u32> {
        postmaster_pid(&self.dir.path().join("data"))
    }

    /// Creates an empty database and returns its URL (several stores on one server,
    /// each with its own schema).
    pub fn create_database(&self, name: &str) -> String {
        let out = Command::new(self.template.tools.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(name)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url_of(name)
    }

    /// The single value `sql` returns, as text (`psql -At`).
    pub fn query_one_string(&self, sql: &str) -> String {
        let out = Command::new(self.template.tools.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The single number `sql` returns (0 for NULL).
    pub fn query_one_i64(&self, sql: &str) -> i64 {
        self.query_one_string(sql).parse().unwrap_or(0)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        stop(&mut self.child, &self.dir.path().join("data"));
        // The TempDir field then deletes the folder.
    }
}

/// An initialised cluster that servers copy, shared while any of them runs.
struct Template {
    /// Deletes the folder if this process dies without dropping it.
    _guard: Option<Guard>,
    dir: tempfile::TempDir,
    tools: Tools,
}

static TEMPLATE: Mutex<Weak<Template>> = Mutex::new(Weak::new());

fn template() -> Arc<Template> {
    // A test that panicked while holding the lock left nothing half-made behind it
    // (the template is stored only once complete).
    let mut slot = TEMPLATE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = slot.upgrade() {
        return t;
    }
    let tools = Tools::find();
    let dir = tempfile::Builder::new()
        .prefix("covisit-pg-template-")
        .tempdir()
        .expect("a temporary folder for PostgreSQL");
    tools.give(dir.path());
    let guard = Guard::spawn(":", dir.path());
    let log = File::create(dir.path().join("initdb.log")).expect("a log file");
    let mut child = tools
        .command("initdb")
        .arg("-D")
        .arg(dir.path().join("data"))
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
        // 1 MiB WAL segments instead of 16: less for every server to copy.
        .args(["--no-sync", "--no-instructions", "--wal-segsize=1"])
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a log file handle"))
        .stderr(log)
        .spawn()
        .expect("initdb starts");
    let deadline = Instant::now() + INITDB_WAIT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    if !status.is_some_and(|s| s.success()) {
        let log = fs::read_to_string(dir.path().join("initdb.log")).unwrap_or_default();
        panic!("initdb failed ({status:?}):\n{log}");
    }
    let t = Arc::new(Template {
        _guard: guard,
        dir,
        tools,
    });
    *slot = Arc::downgrade(&t);
    t
}

/// Where PostgreSQL's binaries are and whom they run as.
#[derive(Clone)]
struct Tools {
    bin: PathBuf,
    /// As root: the user the server runs as (initdb refuses root).
    user: Option<User>,
}

#[derive(Clone)]
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl Tools {
    fn find() -> Tools {
        Tools {
            bin: bin_dir(),
            user: if effective_uid() == 0 {
                Some(
                    ["postgres", "nobody"]
                        .iter()
                        .find_map(|name| User::named(name))
                        .expect("as root, a `postgres` or `nobody` user to run PostgreSQL as"),
                )
            } else {
                None
            },
        }
    }

    /// `program` of PostgreSQL's, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            Some(user) => {
                let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
                    .into_iter()
                    .find(|p| Path::new(p).exists())
                    .unwrap_or("runuser");
                let mut cmd = Command::new(runuser);
                cmd.args(["-u", &user.name, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }

    /// Hands a folder this process made to the server's user.
    fn give(&self, dir: &Path) {
        if let Some(u) = &self.user {
            std::os::unix::fs::chown(dir, Some(u.uid), Some(u.gid))
                .expect("chown of the PostgreSQL folder");
        }
    }
}

impl User {
    fn named(name: &str) -> Option<User> {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, name]).output().ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        Some(User {
            name: name.to_string(),
            uid: id("-u")?,
            gid: id("-g")?,
        })
    }
}

fn effective_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or_else(|_| {
            Command::new("id")
                .arg("-u")
                .output()
                .ok()
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                .unwrap_or(u32::MAX)
        })
}

fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("COVISIT_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    // Elsewhere: initdb on the PATH, where it really is (postgres sits beside it).
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("initdb"))
        .filter(|p| p.exists())
        .find_map(|p| fs::canonicalize(p).ok()?.parent().map(Path::to_path_buf))
        .expect(
            "PostgreSQL's server binaries (initdb, postgres) were not found: run \
             scripts/bootstrap, or set COVISIT_PG_BIN to their folder",
        )
}

/// A port nothing listened on a moment ago (postgres may still lose it to another
/// process: `start` then tries another).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Line 8 of `postmaster.pid` is the server's state (`starting`, `ready`, …).
fn postmaster_status(data: &Path) -> Option<String> {
    let pid_file = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    pid_file.lines().nth(7).map(|s| s.trim().to_string())
}

fn postmaster_pid(data: &Path) -> Option<u32> {
    let pid_file = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    pid_file.lines().next()?.trim().parse().ok()
}

fn wait_ready(child: &mut Child, data: &Path, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("postgres exited ({status})"));
        }
        if postmaster_status(data).as_deref() == Some("ready")
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not ready after {START_WAIT:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Immediate shutdown (the data is thrown away), then SIGKILL if that took too long.
fn stop(child: &mut Child, data: &Path) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    // The postmaster itself: the child may be `runuser`, which only waits for it.
    let pid = postmaster_pid(data).unwrap_or(child.id());
    signal("QUIT", pid);
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(POLL);
    }
    signal("KILL", pid);
    let _ = child.kill();
    let _ = child.wait();
}

fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A `sh` whose stdin is a pipe from this process: its `read` returns when this
/// process ends, however it ends; it then runs `script` (`$1` is `dir`) and deletes
/// `dir`, again until it is gone (a `cp` or `initdb` orphaned mid-way may still write
/// into it). It ignores SIGINT, which Ctrl-C sends to the whole process group.
/// Dropping the guard kills it: the drop cleans up itself.
struct Guard(Child);

impl Guard {
    fn spawn(script: &str, dir: &Path) -> Option<Guard> {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"trap '' INT; read -r _
                {script}
                n=0
                while [ -e "$1" ] && [ "$n" -lt 100 ]; do
                    rm -rf "$1" 2>/dev/null || sleep 0.1; n=$((n + 1))
                done"#
            ))
            .arg("covisit-pg-guard")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(Guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
}
