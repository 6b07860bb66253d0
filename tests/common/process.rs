//! `custody serve` as a real process on loopback.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A `custody serve` child process; killed (SIGKILL) when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `custody --data DIR serve --checkpoint-interval 0 EXTRA…` on a free port (the log
/// key is `DIR/log-key.pem`) and waits until it is ready.
pub fn serve(dir: &Path, extra: &[&str]) -> Served {
    serve_with_env(dir, extra, &[])
}

/// [`serve`] with environment variables set for the server.
pub fn serve_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--data")
        .arg(dir)
        .args(["serve", "--checkpoint-interval", "0", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .env("CUSTODY_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("custody serve starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&format!("{url}/readyz")).call().is_err() {
        assert!(Instant::now() < deadline, "the server did not become ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    Served { child, url }
}
