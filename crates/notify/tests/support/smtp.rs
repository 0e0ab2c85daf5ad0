//! A small SMTP server for tests: EHLO, STARTTLS or implicit TLS (a certificate from a private
//! CA made here), AUTH PLAIN and LOGIN, MAIL/RCPT/DATA. Records each session.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text; offers STARTTLS when told.
    Plain { offer_starttls: bool },
    /// TLS from the first byte.
    ImplicitTls,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub security: Security,
    /// Mechanisms advertised after EHLO (only once the connection is encrypted, as real
    /// servers do).
    pub mechanisms: Vec<&'static str>,
    /// The login it accepts; with one set, MAIL without a login is refused.
    pub login: Option<(String, String)>,
    /// Refuses every login with 535.
    pub refuse_auth: bool,
}

impl Config {
    pub fn open_relay() -> Config {
        Config {
            security: Security::Plain {
                offer_starttls: false,
            },
            mechanisms: Vec::new(),
            login: None,
            refuse_auth: false,
        }
    }
}

/// What one SMTP session carried.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub ehlo: Vec<String>,
    pub tls: bool,
    /// Mechanism, user name, password.
    pub auth: Option<(String, String, String)>,
    pub mail_from: Option<String>,
    pub rcpt_to: Vec<String>,
    /// The message as sent (dot-unstuffed, CRLF line ends).
    pub data: Option<String>,
}

impl Session {
    /// The value of a header of the message (first match, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let data = self.data.as_ref()?;
        let head = data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(current) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    current.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':')
                && key.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_owned());
            }
        }
        value
    }

    pub fn body(&self) -> String {
        let data = self.data.clone().unwrap_or_default();
        data.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }
}

pub struct SmtpServer {
    pub port: u16,
    /// The CA that issued the server's certificate (for `127.0.0.1` and `localhost`).
    pub ca_pem: String,
    sessions: Arc<Mutex<Vec<Session>>>,
}

impl SmtpServer {
    pub async fn start(config: Config) -> SmtpServer {
        let (ca_pem, acceptor) = tls_acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let recorded = sessions.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let config = config.clone();
                let acceptor = acceptor.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let session = serve(stream, &config, &acceptor).await;
                    recorded.lock().unwrap().push(session);
                });
            }
        });
        SmtpServer {
            port,
            ca_pem,
            sessions,
        }
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }

    /// The one session that delivered a message.
    pub fn delivered(&self) -> Session {
        let delivered: Vec<Session> = self
            .sessions()
            .into_iter()
            .filter(|s| s.data.is_some())
            .collect();
        assert_eq!(delivered.len(), 1, "expected one message: {delivered:?}");
        delivered.into_iter().next().unwrap()
    }
}

/// A CA and a server certificate it signed, as a rustls acceptor; returns the CA's PEM.
fn tls_acceptor() -> (String, TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "statehouse test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);

    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    (ca_cert.pem(), TlsAcceptor::from(Arc::new(config)))
}

async fn serve(stream: TcpStream, config: &Config, acceptor: &TlsAcceptor) -> Session {
    let mut session = Session::default();
    match config.security {
        Security::ImplicitTls => {
            let Ok(tls) = acceptor.accept(stream).await else {
                return session;
            };
            session.tls = true;
            dialogue(tls, true, config, &mut session).await;
        }
        Security::Plain { .. } => {
            if let Some(stream) = dialogue(stream, true, config, &mut session).await {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return session;
                };
                session.tls = true;
                dialogue(tls, false, config, &mut session).await;
            }
        }
    }
    session
}

/// Speaks SMTP until QUIT or the end of the connection; returns the stream when the client
/// asked for STARTTLS (to be wrapped in TLS and spoken to again).
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    greet: bool,
    config: &Config,
    session: &mut Session,
) -> Option<S> {
    let mut conn = BufReader::new(stream);
    if greet {
        reply(&mut conn, "220 test.invalid ESMTP statehouse-test").await;
    }
    let mut authenticated = false;
    loop {
        let line = read_line(&mut conn).await?;
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_owned();
        match verb.as_str() {
            "EHLO" => {
                session.ehlo.push(line[4..].trim().to_owned());
                let mut lines = vec!["test.invalid".to_owned(), "8BITMIME".to_owned()];
                if config.security
                    == (Security::Plain {
                        offer_starttls: true,
                    })
                    && !session.tls
                {
                    lines.push("STARTTLS".to_owned());
                }
                if !config.mechanisms.is_empty() && session.tls {
                    lines.push(format!("AUTH {}", config.mechanisms.join(" ")));
                }
                lines.push("HELP".to_owned());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                reply(&mut conn, &text.join("\r\n")).await;
            }
            "STARTTLS" => {
                reply(&mut conn, "220 2.0.0 Ready to start TLS").await;
                return Some(conn.into_inner());
            }
            "AUTH" => {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let mechanism = parts.get(1).map(|m| m.to_ascii_uppercase());
                let (user, pass) = match mechanism.as_deref() {
                    Some("PLAIN") => {
                        let encoded = match parts.get(2) {
                            Some(initial) => (*initial).to_owned(),
                            None => {
                                reply(&mut conn, "334 ").await;
                                read_line(&mut conn).await?
                            }
                        };
                        let decoded =
                            String::from_utf8(B64.decode(encoded.trim()).unwrap()).unwrap();
                        let mut fields = decoded.split('\0').skip(1);
                        (
                            fields.next().unwrap_or("").to_owned(),
                            fields.next().unwrap_or("").to_owned(),
                        )
                    }
                    Some("LOGIN") => {
                        let user = match parts.get(2) {
                            Some(initial) => (*initial).to_owned(),
                            None => {
                                reply(&mut conn, "334 VXNlcm5hbWU6").await;
                                read_line(&mut conn).await?
                            }
                        };
                        reply(&mut conn, "334 UGFzc3dvcmQ6").await;
                        let pass = read_line(&mut conn).await?;
                        (decode(&user), decode(&pass))
                    }
                    _ => {
                        reply(&mut conn, "504 5.5.4 Unrecognized authentication type").await;
                        continue;
                    }
                };
                session.auth = Some((mechanism.unwrap_or_default(), user.clone(), pass.clone()));
                let accepted = !config.refuse_auth
                    && config
                        .login
                        .as_ref()
                        .is_some_and(|(u, p)| *u == user && *p == pass);
                if accepted {
                    authenticated = true;
                    reply(&mut conn, "235 2.7.0 Authentication successful").await;
                } else {
                    reply(&mut conn, "535 5.7.8 Authentication credentials invalid").await;
                }
            }
            "MAIL" => {
                if config.login.is_some() && !authenticated {
                    reply(&mut conn, "530 5.7.0 Authentication required").await;
                    continue;
                }
                session.mail_from = Some(angle_address(&line));
                reply(&mut conn, "250 2.1.0 Ok").await;
            }
            "RCPT" => {
                session.rcpt_to.push(angle_address(&line));
                reply(&mut conn, "250 2.1.5 Ok").await;
            }
            "DATA" => {
                reply(&mut conn, "354 End data with <CR><LF>.<CR><LF>").await;
                let mut data = String::new();
                loop {
                    let line = read_line(&mut conn).await?;
                    if line == "." {
                        break;
                    }
                    let line = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(line);
                    data.push_str("\r\n");
                }
                session.data = Some(data);
                reply(&mut conn, "250 2.0.0 Ok: queued").await;
            }
            "RSET" | "NOOP" => reply(&mut conn, "250 2.0.0 Ok").await,
            "QUIT" => {
                reply(&mut conn, "221 2.0.0 Bye").await;
                return None;
            }
            _ => reply(&mut conn, "502 5.5.2 Command not recognized").await,
        }
    }
}

fn decode(b64: &str) -> String {
    String::from_utf8(B64.decode(b64.trim()).unwrap()).unwrap()
}

/// `MAIL FROM:<a@b> BODY=8BITMIME` → `a@b`.
fn angle_address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_owned()
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match conn.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut BufReader<S>, text: &str) {
    let stream = conn.get_mut();
    let _ = stream.write_all(format!("{text}\r\n").as_bytes()).await;
    let _ = stream.flush().await;
}
