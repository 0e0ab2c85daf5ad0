//! PostgreSQL clusters of a test's own (`scripts/pg-cluster.sh`): a primary, a streaming
//! standby of it, promotion, stopping (fast or as a crash). Stopped and removed on drop, so
//! disturbing them disturbs no other test.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn new(prefix: &str) -> Cluster {
        Cluster {
            dir: tempfile::Builder::new().prefix(prefix).tempdir().unwrap(),
            port: free_port(),
        }
    }

    /// A new primary, started.
    pub fn start() -> Cluster {
        let cluster = Cluster::new("statehouse-pg-");
        cluster.up();
        cluster
    }

    /// A streaming standby of `primary` (`pg_basebackup -R`), started.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let cluster = Cluster::new("statehouse-pg-standby-");
        cluster.run(&[
            "standby",
            &cluster.data(),
            &cluster.port.to_string(),
            &primary.port.to_string(),
        ]);
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the cluster again after [`Cluster::down`].
    pub fn up(&self) {
        self.run(&["start", &self.data(), &self.port.to_string()]);
    }

    /// Stops the cluster cleanly (`pg_ctl stop -m fast`: a standby receives all WAL first).
    pub fn down(&self) {
        self.run(&["stop", &self.data()]);
    }

    /// Stops the cluster as a crash would (`pg_ctl stop -m immediate`: no shutdown checkpoint,
    /// nothing more sent to standbys).
    pub fn crash(&self) {
        self.run(&["stop", &self.data(), "immediate"]);
    }

    /// Ends a standby's recovery: it accepts writes from now on.
    pub fn promote(&self) {
        self.run(&["promote", &self.data()]);
    }

    /// Runs `sql` with psql and returns its unaligned output, trimmed.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-XAtc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn data(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg-cluster.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.data(), "immediate"])
            .output();
    }
}
