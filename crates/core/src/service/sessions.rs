//! Password login, browser sessions and the throttling of failed logins.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Services, UserChange, new_id};
use crate::access::{Credential, Principal, TokenKind};
use crate::accounts::{Session, SessionSecret, User, parse_user_name, verify_password_blocking};
use crate::audit::AuditRecord;
use crate::printable::{escaped, refuse_control};
use crate::{Error, Result};
use serde_json::json;

/// Failed logins are counted over this window, per account name and per source address.
pub const LOGIN_WINDOW_MILLIS: i64 = 15 * 60_000;
/// Failed logins for one account name within the window before further attempts get 429.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// Failed logins from one address within the window before further attempts get 429.
pub const MAX_FAILURES_PER_IP: i64 = 20;
/// A session's `last_seen_at` is written at most this often.
const SESSION_TOUCH_MILLIS: i64 = 60_000;

/// One message for every failed login, so it never tells whether the account exists.
const LOGIN_FAILED: &str = "wrong user name or password";

/// The refusal of a password login when only single sign-on is allowed.
pub const PASSWORD_LOGIN_OFF: &str = "signing in with a password is turned off on this server \
     (oidc.local_login = false): sign in with single sign-on, or use an API token";

/// A successful login: the session cookie's secret and what the client is told. (No `Debug`:
/// it carries the session's secrets.)
pub struct LoggedIn {
    pub user: User,
    pub session: Session,
    pub secret: SessionSecret,
    /// To be sent back as `X-CSRF-Token` with every unsafe request of this session.
    pub csrf_token: String,
}

/// What logins through one [`Services`] did: user look-ups and argon2 verifications. A seam
/// for tests that every attempt costs alike.
#[derive(Debug, Default)]
pub(crate) struct LoginWork {
    lookups: AtomicU64,
    verifications: AtomicU64,
}

/// Longest name looked up: longer than any user name (64), so a cut name stays unknown.
const MAX_LOOKUP_NAME: usize = 65;

/// The name a login looks up and counts failures under: the user name as stored (lower
/// case), or for a name no user can have, that name cut to [`MAX_LOOKUP_NAME`] characters
/// (it finds nobody, and an overlong one still fits the failure counters' index).
fn lookup_name(name: &str) -> String {
    parse_user_name(name).unwrap_or_else(|_| {
        name.trim()
            .to_lowercase()
            .chars()
            .take(MAX_LOOKUP_NAME)
            .collect()
    })
}

impl Services {
    /// User look-ups and argon2 verifications done by logins through these services (and
    /// their clones), in that order.
    pub fn login_work(&self) -> (u64, u64) {
        (
            self.login_work.lookups.load(Ordering::Relaxed),
            self.login_work.verifications.load(Ordering::Relaxed),
        )
    }

    /// Checks a user name and password and opens a session. Failures are counted per account
    /// name and per source address; past the limits, attempts are refused with
    /// `TooManyRequests` before the password is looked at. An unknown user, a user without a
    /// password, a disabled user and a wrong password all fail alike, and take alike long.
    async fn login_unaudited(
        &self,
        name: &str,
        password: &str,
        source_ip: Option<&str>,
    ) -> Result<LoggedIn> {
        let now = self.now();
        // Failures count for exactly the window: one from `now - window` has aged out.
        let window_start = now.plus_millis(1 - LOGIN_WINDOW_MILLIS);
        // A name with control characters names no account (and U+0000 cannot even be looked
        // up on PostgreSQL): the attempt counts against the address only, and is refused
        // naming the field. No user name can hold one, so this tells nothing about accounts.
        let unusable_name = refuse_control("field \"name\"", name).err();
        let lookup_name = lookup_name(name);
        let account_key = format!("account:{lookup_name}");
        let mut keys = Vec::new();
        if unusable_name.is_none() {
            keys.push((
                account_key.clone(),
                MAX_FAILURES_PER_ACCOUNT,
                "this account",
            ));
        }
        if let Some(ip) = source_ip {
            keys.push((format!("ip:{ip}"), MAX_FAILURES_PER_IP, "this address"));
        }
        for (key, max, what) in &keys {
            let failures = self.store.login_failures(key, window_start).await?;
            if failures.count >= *max {
                let frees_at = failures
                    .oldest
                    .unwrap_or(now)
                    .plus_millis(LOGIN_WINDOW_MILLIS);
                let retry_after_secs =
                    u64::try_from((frees_at.millis() - now.millis() + 999) / 1000)
                        .unwrap_or(1)
                        .max(1);
                return Err(Error::TooManyRequests {
                    message: format!(
                        "too many failed logins for {what}; try again in {retry_after_secs} seconds"
                    ),
                    retry_after_secs,
                });
            }
        }
        if let Some(refusal) = unusable_name {
            let keys: Vec<String> = keys.into_iter().map(|(k, _, _)| k).collect();
            self.store
                .record_login_failure(&keys, now, window_start)
                .await?;
            return Err(refusal);
        }
        // From here every attempt costs the same, whatever it names: one look-up by name and
        // one argon2 verification, against the user's hash or a dummy made with the same
        // parameters. No branch skips either, so the time an answer takes says nothing about
        // the account.
        self.login_work.lookups.fetch_add(1, Ordering::Relaxed);
        let user = self.store.user_by_name(&lookup_name).await?;
        let usable_hash = user
            .as_ref()
            .filter(|u| !u.is_disabled())
            .and_then(|u| u.password_hash.as_deref());
        self.login_work
            .verifications
            .fetch_add(1, Ordering::Relaxed);
        let verified = verify_password_blocking(usable_hash, password).await;
        let user = match user {
            Some(user) if verified => user,
            other => {
                let reason = match &other {
                    None => "no such user",
                    Some(u) if u.is_disabled() => "user is disabled",
                    Some(u) if !u.has_password() => {
                        "user has no password (set one with `statehouse user passwd`)"
                    }
                    Some(_) => "wrong password",
                };
                tracing::info!(user = escaped(name), source_ip, reason, "login refused");
                let keys: Vec<String> = keys.into_iter().map(|(k, _, _)| k).collect();
                self.store
                    .record_login_failure(&keys, now, window_start)
                    .await?;
                return Err(Error::Unauthorized(LOGIN_FAILED.into()));
            }
        };
        self.store.clear_login_failures(&account_key).await?;
        self.open_session(user, source_ip).await
    }

    /// Opens a session for a user whose identity was just proven (a password, a first-run
    /// token, or single sign-on), ending expired sessions on the way.
    pub(super) async fn open_session(
        &self,
        user: User,
        source_ip: Option<&str>,
    ) -> Result<LoggedIn> {
        let now = self.now();
        let idle_since = now.plus_millis(-self.auth.session_idle_millis);
        self.store.delete_expired_sessions(now, idle_since).await?;
        let secret = SessionSecret::generate();
        let session = Session {
            id: new_id(),
            user_id: user.id.clone(),
            secret_hash: secret.hash(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus_millis(self.auth.session_lifetime_millis),
            source_ip: source_ip.map(str::to_owned),
        };
        self.store.create_session(&session).await?;
        let csrf_token = secret.csrf_token();
        Ok(LoggedIn {
            user,
            session,
            secret,
            csrf_token,
        })
    }

    /// The principal of a session cookie, with the session. Ends sessions past their idle or
    /// absolute limit; records use at most once a minute.
    pub async fn authenticate_session(
        &self,
        secret: &SessionSecret,
    ) -> Result<(Principal, Session)> {
        let now = self.now();
        let session = self
            .store
            .session_by_hash(&secret.hash())
            .await?
            .ok_or_else(|| {
                Error::Unauthorized("not logged in (or the session was ended); log in again".into())
            })?;
        let idle = now.millis() - session.last_seen_at.millis();
        if now >= session.expires_at || idle >= self.auth.session_idle_millis {
            self.store.delete_session(&session.id).await?;
            return Err(Error::Unauthorized(
                "session has expired; log in again".into(),
            ));
        }
        let access = self
            .user_access(&session.user_id)
            .await?
            .filter(|a| !a.user.is_disabled())
            .ok_or_else(|| Error::Unauthorized("this session's user is disabled or gone".into()))?;
        if idle >= SESSION_TOUCH_MILLIS
            && let Err(e) = self.store.touch_session(&session.id, now).await
        {
            tracing::warn!(error = %e, "could not record session use");
        }
        Ok((Principal::for_session(&access, &session.id), session))
    }

    /// Ends the session of this cookie (nothing happens for an unknown one).
    pub async fn logout(&self, secret: &SessionSecret) -> Result<()> {
        if let Some(session) = self.store.session_by_hash(&secret.hash()).await? {
            self.store.delete_session(&session.id).await?;
        }
        Ok(())
    }
}

impl Services {
    /// Checks a user name and password and opens a session (see the unaudited variant for the
    /// rules). Audited as `login.succeeded` or `login.failed` with the name tried, the method
    /// (`password`) and the client's address; never the password. Refused with 403 when
    /// password sign-in is turned off (`oidc.local_login = false`).
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        source_ip: Option<&str>,
    ) -> Result<LoggedIn> {
        let result = if self.auth.password_login {
            self.login_unaudited(name, password, source_ip).await
        } else {
            Err(Error::Forbidden(PASSWORD_LOGIN_OFF.into()))
        };
        self.audit_password_login(name, source_ip, result).await
    }

    async fn audit_password_login(
        &self,
        name: &str,
        source_ip: Option<&str>,
        result: Result<LoggedIn>,
    ) -> Result<LoggedIn> {
        let source_ip = source_ip.map(str::to_owned);
        // The name exactly as tried, control characters included: the journal stores any text,
        // and the CLI shows it escaped.
        match &result {
            Ok(_) => {
                let record = AuditRecord::new(self.now(), name.trim(), "login.succeeded")
                    .source_ip(source_ip)
                    .target(name.trim())
                    .detail(json!({"method": "password"}));
                self.record(record).await?;
            }
            Err(e) => {
                let record = AuditRecord::new(self.now(), name.trim(), "login.failed")
                    .source_ip(source_ip)
                    .target(name.trim())
                    .detail(json!({"method": "password"}))
                    .refused_by(e);
                self.record_later(record).await;
            }
        }
        result
    }
}

impl Services {
    /// First sign-in of a user who has no password yet (the instance admin after the first
    /// start): the user's own unrestricted token proves who it is, the password is set
    /// (audited as `user.update`, like any password change) and a session opens. A user that
    /// already has a password signs in with it instead.
    pub async fn set_first_password(
        &self,
        token: &str,
        password: &str,
        source_ip: Option<&str>,
    ) -> Result<LoggedIn> {
        let who = self
            .authenticate_from(token.trim(), source_ip.map(str::to_owned))
            .await?;
        let refuse = || {
            Error::Forbidden(
                "this token cannot set a first password: use the one-time admin token printed at \
                 the first start, or an unrestricted user token of a user without a password"
                    .into(),
            )
        };
        if who.narrowed || who.credential != Credential::Token(TokenKind::User) {
            return Err(refuse());
        }
        let user = self.caller_user(&who).await?.ok_or_else(refuse)?;
        if !self.auth.password_login && !user.instance_admin {
            return Err(Error::Forbidden(format!(
                "{PASSWORD_LOGIN_OFF}; the first-run setup is kept for instance admins only"
            )));
        }
        if user.has_password() {
            return Err(Error::Conflict(format!(
                "user {:?} already has a password: sign in with it (an admin can reset it with \
                 `statehouse user passwd {}`)",
                user.name, user.name
            )));
        }
        let change = UserChange {
            password: Some(password.to_owned()),
            instance_admin: None,
            disabled: None,
        };
        self.update_user(&who, &user.name, change).await?;
        // Also when password sign-in is off: the first-run setup is the instance admin's way
        // in (its password then serves only if local login is turned back on).
        let result = self.login_unaudited(&user.name, password, source_ip).await;
        self.audit_password_login(&user.name, source_ip, result)
            .await
    }
}
