//! The outbound policy of statehouse, set by the instance configuration (`[outbound]`), never by
//! workspace admins: which addresses webhooks, notifiers, storage targets and databases may
//! connect to, and which directories `local` targets may write to.
//!
//! - Link-local and cloud metadata addresses (169.254/16, fe80::/10, fd00:ec2::254,
//!   100.100.100.200, …) and reserved ones are always refused.
//! - This host (127/8, ::1, 0.0.0.0, ::, in every spelling the resolver accepts) and Unix
//!   sockets are refused unless allowed per kind of connection.
//! - Private ranges (RFC 1918, CGNAT, fc00::/7) are allowed per kind: by default to databases
//!   and storage targets, which usually live there, not to webhooks and notifiers, whose
//!   receivers usually live on the internet and whose URLs any workspace admin may set.
//! - Names are resolved once, checked, and the connection goes to exactly the checked address
//!   ([`OutboundPolicy::resolve`], [`PolicyResolver`] for HTTP clients), so a name that
//!   resolves differently the second time (DNS rebinding) gains nothing.
//! - Failures do not tell an open port from a closed one: [`unreachable_message`].

mod address;
mod config;
mod http;
mod policy;

pub use address::{AddressClass, Network, classify};
pub use config::{OutboundConfig, Purpose, PurposeSet};
pub use http::{HttpClient, PolicyResolver, check_literal_host, describe_failure, refusal_in};
pub use policy::{OutboundError, OutboundPolicy, Refusal, StoreLocation, unreachable_message};
