//! The `[http]` configuration reaches the real server: `STATEHOUSE_HTTP__IDLE_TIMEOUT` closes
//! idle connections, `STATEHOUSE_HTTP__MAX_CONNECTIONS` caps them while health checks still
//! answer, and the limit is logged. (The timeouts themselves are tested in
//! `crates/server/tests/connections.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, Store, skip_e2e};

/// A guard against hanging, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Everything the server sends until it closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection stayed open ({e}); received {received:?}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// A keep-alive connection that holds one of the server's connection slots. The readiness
/// check's connection may still hold one for a moment after the server started (its client
/// closes it in the background); a connection accepted beyond the limit answers with
/// `connection: close`, so that one is dropped and another tried.
fn hold_a_slot(server: &Server) -> TcpStream {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut stream = connect(server);
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: statehouse\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        if !answer.contains("connection: close") {
            return stream;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no connection slot came free: {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_idle_timeout_is_configurable() {
    if skip_e2e() {
        return;
    }
    let server = Server::start_with(Store::Sqlite, &[("STATEHOUSE_HTTP__IDLE_TIMEOUT", "500ms")]);
    let mut idle = connect(&server);
    assert_eq!(read_to_close(&mut idle), "", "closed without a word");
}

#[test]
fn the_connection_limit_is_configurable_and_logged() {
    if skip_e2e() {
        return;
    }
    let server = Server::start_with(Store::Sqlite, &[("STATEHOUSE_HTTP__MAX_CONNECTIONS", "2")]);
    let held = [hold_a_slot(&server), hold_a_slot(&server)];
    let mut probe = connect(&server);
    probe
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: statehouse\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_to_close(&mut probe);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut refused = connect(&server);
    refused
        .write_all(b"GET /api/v1/workspaces HTTP/1.1\r\nHost: statehouse\r\n\r\n")
        .unwrap();
    let answer = read_to_close(&mut refused);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        server.wait_for_log("connection limit reached"),
        "{}",
        server.log_text()
    );
    drop(held);
}
