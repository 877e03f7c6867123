//! A throwaway Redis for the cluster tests: `redis-server` on a free loopback port,
//! nothing saved to disk, stopped on drop. `scripts/bootstrap` installs it.
#![allow(dead_code)] // each test file uses a different part of the harness

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// With TLS and a password (`start_tls`): the folder of its certificates.
    tls: Option<tempfile::TempDir>,
}

/// The password `start_tls`'s Redis requires.
pub const TLS_PASSWORD: &str = "bus-password";

/// Where `redis-server` is (PATH, or Debian's place).
fn binary() -> String {
    for candidate in [
        "redis-server",
        "/usr/bin/redis-server",
        "/usr/local/bin/redis-server",
    ] {
        if Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return candidate.to_string();
        }
    }
    panic!("redis-server is not installed (scripts/bootstrap installs it)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            tls: None,
        };
        r.spawn();
        r
    }

    /// A Redis that speaks only TLS (a certificate for 127.0.0.1 signed by a throwaway
    /// CA, `ca_file`, made with the `openssl` command) and requires `TLS_PASSWORD`.
    pub fn start_tls() -> RedisServer {
        let dir = tempfile::tempdir().expect("a folder for certificates");
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "openssl {args:?} failed");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=covisit test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(dir.path().join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n")
            .expect("writes ext.cnf");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ]);
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            tls: Some(dir),
        };
        r.spawn();
        r
    }

    /// The CA that signed a TLS Redis's certificate (`start_tls`).
    pub fn ca_file(&self) -> Option<String> {
        let dir = self.tls.as_ref()?;
        Some(dir.path().join("ca.pem").to_string_lossy().into_owned())
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut args: Vec<String> = Vec::new();
        match &self.tls {
            None => args.extend(["--port".into(), port]),
            Some(dir) => {
                let file = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
                args.extend([
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port,
                    "--tls-cert-file".into(),
                    file("server.pem"),
                    "--tls-key-file".into(),
                    file("server.key"),
                    "--tls-ca-cert-file".into(),
                    file("ca.pem"),
                    "--tls-auth-clients".into(),
                    "no".into(),
                    "--requirepass".into(),
                    TLS_PASSWORD.into(),
                ]);
            }
        }
        let child = Command::new(binary())
            .args(&args)
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not listen within 10 s");
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}", self.port),
            Some(_) => format!("rediss://:{TLS_PASSWORD}@127.0.0.1:{}", self.port),
        }
    }

    /// Stops it (every connection drops) and starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
