//! Notifiers: how statehouse tells people that something happened (a backup failed, a
//! database went down, a lock went stale). Each channel turns one [`Notification`] into the
//! receiver's own format and delivers it; deciding *when* to notify is the caller's job.
//!
//! A [`NotifierSpec`] holds a channel's settings. Its secrets (passwords, tokens, webhook URLs,
//! header values) can be split off with [`NotifierSpec::split_secrets`] so they are stored
//! encrypted, and are never printed: `Debug`, [`NotifierSpec::redacted`] and every
//! [`NotifyError`] leave them out.

mod discord;
mod email;
mod error;
mod http;
mod mattermost;
mod notification;
mod ntfy;
mod secret;
mod slack;
mod spec;
mod teams;
mod telegram;
mod webhook;

use std::time::Duration;

pub use error::NotifyError;
pub use notification::{Notification, Severity, test_notification};
pub use secret::Secret;
pub use spec::{
    DiscordSpec, EmailSecurity, EmailSpec, MattermostSpec, NotifierSpec, NtfyPriority, NtfySpec,
    SlackSpec, TeamsSpec, TelegramSpec, WebhookMethod, WebhookSpec,
};
pub use statehouse_outbound::HttpClient;
pub use webhook::PLACEHOLDERS;

/// How long one delivery may take, connection included, before it counts as failed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Delivers `n` through the channel `spec` describes, within [`DEFAULT_TIMEOUT`].
///
/// Every connection goes through `client`'s outbound policy (email too: the mail server is
/// resolved and checked by it). The error says the receiver's status or why it could not be
/// reached, never the receiver's own words (a URL may point at something that is not a
/// receiver) and never secrets.
pub async fn send(
    spec: &NotifierSpec,
    n: &Notification,
    client: &HttpClient,
) -> Result<(), NotifyError> {
    send_with_timeout(spec, n, client, DEFAULT_TIMEOUT).await
}

/// [`send`] with an explicit time limit.
pub async fn send_with_timeout(
    spec: &NotifierSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    match spec {
        NotifierSpec::Email(s) => email::send(s, n, client, timeout).await,
        NotifierSpec::Slack(s) => slack::send(s, n, client, timeout).await,
        NotifierSpec::Discord(s) => discord::send(s, n, client, timeout).await,
        NotifierSpec::Telegram(s) => telegram::send(s, n, client, timeout).await,
        NotifierSpec::Teams(s) => teams::send(s, n, client, timeout).await,
        NotifierSpec::Mattermost(s) => mattermost::send(s, n, client, timeout).await,
        NotifierSpec::Ntfy(s) => ntfy::send(s, n, client, timeout).await,
        NotifierSpec::Webhook(s) => webhook::send(s, n, client, timeout).await,
    }
}
