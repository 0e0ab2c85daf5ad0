//! Staying on the right server of a multi-host connection string (PostgreSQL HA: Patroni,
//! Pigsty, a promoted streaming standby). sqlx connects to one host; this module picks which,
//! as libpq's `target_session_attrs` would, and moves the pool when that server stops being
//! the right one:
//!
//! - every new connection is checked (a standby or read-only server is refused, so no write
//!   ever lands on one), and connections opened before a switch are closed instead of reused;
//! - a switch is looked for when a statement fails the way a lost or demoted server fails
//!   (connection errors, `admin_shutdown`, `read_only_sql_transaction`), when a new connection
//!   was refused by the check, or when a caller has waited [`SLOW_ACQUIRE`] for a connection;
//! - the hosts are probed in the order given, one search at a time, until one fits (for up to
//!   [`SEARCH_FOR`], then again at the next failure), and the pool's connect options are
//!   swapped. Callers waiting for a connection meanwhile get one from the new server (sqlx
//!   re-reads the options between attempts) or, after `acquire_timeout`, a 503.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use tokio::sync::Notify;

use statehouse_core::metrics::names;

use crate::conninfo::{ConnInfo, SessionAttrs, place};

/// A caller waiting this long for a connection makes the pool look for the right server.
const SLOW_ACQUIRE: Duration = Duration::from_secs(1);
/// How long one search keeps probing before it gives up (the next failure starts another).
const SEARCH_FOR: Duration = Duration::from_secs(60);
/// Pause between rounds of probes while no host fits.
const SEARCH_PAUSE: Duration = Duration::from_millis(250);
/// A search that just confirmed the current host is not repeated within this time.
const SEARCH_COOLDOWN: Duration = Duration::from_secs(1);

/// Which server the pool uses, and the search for a better one.
pub(crate) struct Failover {
    info: ConnInfo,
    /// `primary` or `replica`, for the switch counter.
    pool_name: &'static str,
    /// Longest wait for one host's probe (connect + one query).
    probe_timeout: Duration,
    base: Instant,
    /// Connections opened before this moment (µs after `base`) are closed instead of used.
    fresh_from: AtomicU64,
    /// Index in `info.hosts` of the host the pool connects to.
    current: AtomicUsize,
    searching: AtomicBool,
    /// When the last search ended (µs after `base`).
    searched_at: AtomicU64,
    /// A new connection was refused by the session check: search now.
    wanted: Notify,
}

/// What a probe of one host found.
struct Seen {
    in_recovery: bool,
    read_only: bool,
}

impl Failover {
    pub(crate) fn new(
        info: ConnInfo,
        pool_name: &'static str,
        probe_timeout: Duration,
    ) -> Failover {
        Failover {
            info,
            pool_name,
            probe_timeout,
            base: Instant::now(),
            fresh_from: AtomicU64::new(0),
            current: AtomicUsize::new(0),
            searching: AtomicBool::new(false),
            searched_at: AtomicU64::new(0),
            wanted: Notify::new(),
        }
    }

    fn micros(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether there is anything to switch between or check (several hosts, or a single one
    /// that must be of a kind).
    pub(crate) fn watches(&self) -> bool {
        self.info.hosts.len() > 1 || self.info.attrs != SessionAttrs::Any
    }

    /// Starts on host `index` (found by [`Failover::find`] before the pool exists).
    pub(crate) fn start_at(&self, index: usize) {
        self.current.store(index, Ordering::Release);
    }

    /// The options of the host in use.
    pub(crate) fn current_options(&self) -> PgConnectOptions {
        self.info.hosts[self.current.load(Ordering::Acquire)].clone()
    }

    /// `host:port` of the host in use.
    pub(crate) fn current_place(&self) -> String {
        place(&self.info.hosts[self.current.load(Ordering::Acquire)])
    }

    /// Whether a pooled connection of this `age` may be used (it was opened after the last
    /// switch or connection loss).
    pub(crate) fn keeps(&self, age: Duration) -> bool {
        let opened = self
            .micros()
            .saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX));
        opened >= self.fresh_from.load(Ordering::Acquire)
    }

    /// The pool's connections are suspect (a server went away): close them instead of using
    /// them.
    pub(crate) fn drop_open_connections(&self) {
        self.fresh_from.store(self.micros(), Ordering::Release);
    }

    /// Checks a new connection's server against `target_session_attrs`; a wrong one is
    /// refused (and a search started through [`Failover::wanted`]).
    pub(crate) async fn check_session(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.info.attrs == SessionAttrs::Any || self.info.attrs == SessionAttrs::PreferStandby {
            return Ok(());
        }
        let seen = session_state(conn).await?;
        if self.info.attrs.accepts(seen.in_recovery, seen.read_only) {
            return Ok(());
        }
        self.wanted.notify_waiters();
        Err(sqlx::Error::Protocol(format!(
            "{} is {}, not {}",
            self.current_place(),
            seen.describe(),
            self.info.attrs.name()
        )))
    }

    /// Waits for `acquire`, starting a search if it is slow or a new connection was refused.
    pub(crate) async fn watch<F: Future>(self: &Arc<Self>, pool: &PgPool, acquire: F) -> F::Output {
        if !self.watches() {
            return acquire.await;
        }
        tokio::pin!(acquire);
        let slow = tokio::time::sleep(SLOW_ACQUIRE);
        tokio::pin!(slow);
        let mut noticed_slow = false;
        loop {
            tokio::select! {
                biased;
                done = &mut acquire => return done,
                () = &mut slow, if !noticed_slow => {
                    noticed_slow = true;
                    self.search_soon(pool);
                }
                () = self.wanted.notified() => self.search_soon(pool),
            }
        }
    }

    /// Starts a search for the right host unless one runs or just ended.
    pub(crate) fn search_soon(self: &Arc<Self>, pool: &PgPool) {
        if !self.watches() || pool.is_closed() {
            return;
        }
        let cooled = self
            .micros()
            .saturating_sub(self.searched_at.load(Ordering::Acquire))
            >= u64::try_from(SEARCH_COOLDOWN.as_micros()).unwrap_or(u64::MAX);
        if !cooled || self.searching.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            this.search(&pool).await;
            this.searched_at.store(this.micros(), Ordering::Release);
            this.searching.store(false, Ordering::Release);
        });
    }

    async fn search(&self, pool: &PgPool) {
        let started = Instant::now();
        let mut reported = false;
        while started.elapsed() < SEARCH_FOR && !pool.is_closed() {
            match self.find().await {
                Ok(index) => {
                    let before = self.current.swap(index, Ordering::AcqRel);
                    if before != index {
                        pool.set_connect_options(self.info.hosts[index].clone());
                        self.drop_open_connections();
                        ::metrics::counter!(names::STORE_HOST_SWITCHES, "pool" => self.pool_name)
                            .increment(1);
                        tracing::warn!(
                            from = %place(&self.info.hosts[before]),
                            to = %place(&self.info.hosts[index]),
                            after_ms = started.elapsed().as_millis() as u64,
                            "PostgreSQL: switched to another host ({})",
                            self.info.attrs.name()
                        );
                    } else if reported {
                        tracing::warn!(host = %place(&self.info.hosts[index]), "PostgreSQL: host is back");
                    }
                    return;
                }
                Err(why) => {
                    if !reported {
                        tracing::warn!("PostgreSQL: looking for a host to use: {why}");
                        reported = true;
                    }
                    tokio::time::sleep(SEARCH_PAUSE).await;
                }
            }
        }
    }

    /// The first host that fits `target_session_attrs` (for prefer-standby: the first standby,
    /// else the first that answers), probing them in order; otherwise why none does.
    pub(crate) async fn find(&self) -> Result<usize, String> {
        let mut reasons = Vec::new();
        let mut any_up = None;
        for (index, options) in self.info.hosts.iter().enumerate() {
            match self.probe(options).await {
                Ok(seen) => {
                    let fits = match self.info.attrs {
                        SessionAttrs::PreferStandby => seen.in_recovery,
                        attrs => attrs.accepts(seen.in_recovery, seen.read_only),
                    };
                    if fits {
                        return Ok(index);
                    }
                    any_up.get_or_insert(index);
                    reasons.push(format!("{}: {}", place(options), seen.describe()));
                }
                Err(e) => reasons.push(format!("{}: {e}", place(options))),
            }
        }
        if self.info.attrs == SessionAttrs::PreferStandby
            && let Some(index) = any_up
        {
            return Ok(index);
        }
        Err(format!(
            "no host is {} ({})",
            match self.info.attrs {
                SessionAttrs::Any | SessionAttrs::PreferStandby => "reachable",
                SessionAttrs::ReadWrite => "accepting writes",
                SessionAttrs::Primary => "a primary",
                SessionAttrs::ReadOnly => "read-only",
                SessionAttrs::Standby => "a standby",
            },
            reasons.join("; ")
        ))
    }

    async fn probe(&self, options: &PgConnectOptions) -> Result<Seen, String> {
        let probe = async {
            let mut conn = options.connect().await?;
            let seen = session_state(&mut conn).await;
            let _ = conn.close().await;
            seen
        };
        match tokio::time::timeout(self.probe_timeout, probe).await {
            Ok(Ok(seen)) => Ok(seen),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.probe_timeout.as_millis()
            )),
        }
    }
}

impl Seen {
    fn describe(&self) -> &'static str {
        match (self.in_recovery, self.read_only) {
            (true, _) => "a standby (in recovery)",
            (false, true) => "read-only (default_transaction_read_only)",
            (false, false) => "a primary",
        }
    }
}

async fn session_state(conn: &mut PgConnection) -> Result<Seen, sqlx::Error> {
    let row =
        sqlx::query("SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
            .fetch_one(conn)
            .await?;
    Ok(Seen {
        in_recovery: row.try_get(0)?,
        read_only: row.try_get(1)?,
    })
}
