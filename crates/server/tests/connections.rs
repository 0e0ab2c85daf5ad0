//! Connection timeouts and the connection limit, over real sockets: idle and half-sent
//! requests are closed, a slow body that keeps moving is not, a client that stops reading a
//! response is let go, and at the limit health checks still answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use statehouse_core::access::Role;
use statehouse_server::{ConnectionLimits, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something the server must do within well under a second or two;
/// generous, so a loaded machine does not fail the test (this is a guard, not a measurement).
const PATIENCE: Duration = Duration::from_secs(20);

fn limits(idle_ms: u64, header_ms: u64, body_ms: u64, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        timeouts: Timeouts {
            idle: Duration::from_millis(idle_ms),
            header: Duration::from_millis(header_ms),
            body: Duration::from_millis(body_ms),
        },
        max_connections,
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or resets it); returns what arrived.
/// Fails the test when the connection is still open after [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {PATIENCE:?}; it sent {:?}",
        String::from_utf8_lossy(&received)
    );
    received
}

/// Reads one response (head and `Content-Length` body) from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let response = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&data[..end]).into_owned();
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    let status = head[9..12].parse().unwrap();
                    let body = data[end + 4..end + 4 + length].to_vec();
                    return (status, head, body);
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before a whole response: {data:?}");
            data.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    response.expect("no whole response in time")
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: statehouse\r\n{extra}\r\n")
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(limits(300, 30_000, 30_000, 100), common::MAX_BYTES).await;
    // A connection that never sends anything.
    let mut silent = connect(&server).await;
    assert!(read_until_closed(&mut silent).await.is_empty());

    // A kept-alive connection after a complete request and response.
    let mut used = connect(&server).await;
    used.write_all(get("/healthz", "").as_bytes())
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut used).await;
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));
    assert!(
        read_until_closed(&mut used).await.is_empty(),
        "nothing more is sent before closing"
    );
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    // The idle timeout is far longer than the test's patience: only the header timeout can
    // close these connections in time.
    let server = TestServer::start_with(limits(60_000, 300, 60_000, 100), common::MAX_BYTES).await;
    let mut half = connect(&server).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: statehouse\r\n")
        .await
        .unwrap();
    read_until_closed(&mut half).await;

    // Slowloris: a header byte every 50 ms never completes the head; the timeout counts
    // from the first byte, not from the last.
    let mut dribble = connect(&server).await;
    let writer = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: "
            .iter()
            .cycle()
            .take(2_000)
        {
            if dribble.write_all(&[*byte]).await.is_err() {
                return dribble;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server accepted header bytes for 100 s");
    });
    let mut dribble = tokio::time::timeout(PATIENCE, writer)
        .await
        .expect("the server kept reading a never-ending head")
        .unwrap();
    read_until_closed(&mut dribble).await;
}

#[tokio::test]
async fn a_slow_body_that_keeps_sending_is_not_cut() {
    // Every timeout is 400 ms; the upload takes about 3 s in small pieces 150 ms apart.
    let server = TestServer::start_with(limits(400, 400, 400, 100), common::MAX_BYTES).await;
    let token = server.token(Some("default"), Role::Editor).await;
    let state = serde_json::json!({
        "version": 4, "serial": 1, "lineage": "slow-upload", "terraform_version": "1.0.3",
        "outputs": {"padding": {"value": "p".repeat(4_000), "type": "string"}},
        "resources": []
    })
    .to_string();
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /tf/default/slow HTTP/1.1\r\nHost: statehouse\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        state.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for piece in state.as_bytes().chunks(state.len() / 20 + 1) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(piece).await.unwrap();
    }
    let (status, head, body) = read_response(&mut stream).await;
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    assert_eq!(server.versions("default", "slow").await, 1);
}

#[tokio::test]
async fn a_stalled_body_is_cut_after_the_body_timeout() {
    let server = TestServer::start_with(limits(60_000, 60_000, 300, 100), common::MAX_BYTES).await;
    let token = server.token(Some("default"), Role::Editor).await;
    let mut stream = connect(&server).await;
    let head = format!(
        "POST /tf/default/stalled HTTP/1.1\r\nHost: statehouse\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 1000\r\n\r\n{{\"version\": 4,"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "a stalled upload is refused or dropped: {answer}"
    );
    assert_eq!(server.versions("default", "stalled").await, 0);
}

#[tokio::test]
async fn a_client_that_stops_reading_a_response_is_let_go() {
    // A state larger than what the sockets' buffers hold between server and client.
    const SIZE: usize = 48 * 1024 * 1024;
    let server = TestServer::start_with(limits(60_000, 60_000, 300, 100), SIZE + 4096).await;
    let token = server.token(Some("default"), Role::Editor).await;
    let state = serde_json::json!({
        "version": 4, "serial": 1, "lineage": "big", "terraform_version": "1.0.3",
        "outputs": {"padding": {"value": "x".repeat(SIZE), "type": "string"}},
        "resources": []
    })
    .to_string();
    let (status, body) = server
        .send("POST", "default/big", Some(&token), Some(state.as_bytes()))
        .await;
    assert_eq!(status, 200, "{body}");

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(server.url.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let request = get(
        "/tf/default/big",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Not reading for a while: the server's write stalls, and it gives up after 300 ms.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = read_until_closed(&mut stream).await;
    assert!(
        received.len() < state.len(),
        "the whole body ({} bytes) was delivered to a client that did not read",
        received.len()
    );
}

#[tokio::test]
async fn at_the_connection_limit_health_checks_still_answer() {
    let server = TestServer::start_with(limits(60_000, 60_000, 60_000, 3), common::MAX_BYTES).await;
    let token = server.token(Some("default"), Role::Viewer).await;
    let workspaces = get(
        "/api/v1/workspaces",
        &format!("Authorization: Bearer {token}\r\nConnection: close\r\n"),
    );

    // Three kept-alive connections, each known to be served, then left idle.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        stream
            .write_all(get("/healthz", "").as_bytes())
            .await
            .unwrap();
        assert_eq!(read_response(&mut stream).await.0, 200);
        held.push(stream);
    }

    // A fresh client: health is answered, anything else is refused at once.
    let mut probe = connect(&server).await;
    probe
        .write_all(get("/healthz", "Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut probe).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    let mut refused = connect(&server).await;
    refused.write_all(workspaces.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&read_until_closed(&mut refused).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(
        answer.contains("too many open connections (limit 3)"),
        "{answer}"
    );

    // Once one connection closes, new clients are served again.
    drop(held.pop());
    let served = tokio::time::timeout(PATIENCE, async {
        loop {
            let mut stream = connect(&server).await;
            stream.write_all(workspaces.as_bytes()).await.unwrap();
            let answer = read_until_closed(&mut stream).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "no request was served after a connection closed"
    );
}
