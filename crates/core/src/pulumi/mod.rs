//! Pulumi checkpoints, read everywhere statehouse reads Terraform states: versions, diff,
//! outputs, resource search. A Pulumi DIY backend object `.pulumi/stacks/<project>/<stack>.json`
//! (`.json.gz`, `.json.zst`) is stored byte for byte as a version of the state
//! `pulumi/<project>/<stack>`; this module understands its body.
//!
//! - [`decode`]: the JSON text of a body as sent — gunzipped (magic `1f 8b`), un-zstd'd
//!   (`28 b5 2f fd`) or as is — refusing what expands beyond [`MAX_DECODED_BYTES`].
//! - [`is_checkpoint`] and [`classify`]: the Terraform/Pulumi split every reader of a stored
//!   body makes ([`StateKind`]), cheaply (it stops at the `checkpoint` object's first brace).
//! - [`inspect`]: [`CheckpointFacts`] — stack name, client version, resource count, pending
//!   operations, and the search index entries ([`VersionResources`]): one entry per URN with
//!   `type` = the type token (`aws:s3/bucket:Bucket`), `name` = the URN's name part, `module`
//!   = the parent's URN (empty under the stack), `provider` = the provider's URN, `mode` =
//!   `data` for resources read with `get` (`external`), and `id`, `arn`, `name`, `self_link`
//!   from the resource id and its outputs `id`, `arn`, `name`, `selfLink`. The write path
//!   calls it through `state_body::prepare_checkpoint`.
//! - [`diff`]: two checkpoints compared by URN, in the Terraform diff's shape ([`StateDiff`]
//!   with `kind: pulumi`), changed property paths such as `outputs.tags.env`.
//! - [`outputs`]: the root stack resource's (`pulumi:pulumi:Stack`) outputs, as
//!   [`crate::tfstate::Output`]s.
//!
//! Secrets — objects with the key [`SIG_KEY`] (see [`secrets`]) — read `"(secret)"` in every
//! diff and output, for every caller, and are never indexed; their ciphertext is never shown.
//! Values nested deeper than 128 levels read as [`crate::tfstate::TOO_DEEP`], as for Terraform.
//!
//! [`VersionResources`]: crate::store::search::VersionResources
//! [`StateDiff`]: crate::tfstate::StateDiff
//! [`StateKind`]: crate::statefile::StateKind

mod decode;
mod diff;
mod facts;
mod outputs;
mod probe;
mod raw;
pub mod secrets;
mod urn;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use decode::{Encoding, MAX_DECODED_BYTES, decode};
pub use diff::{PENDING_DELETE, diff};
pub use facts::{CheckpointFacts, inspect};
pub use outputs::outputs;
pub use probe::{Classified, classify, is_checkpoint};
pub use secrets::{SECRET_MASK, SIG_KEY};
pub use urn::{STACK_TYPE, URN_PREFIX, UrnParts, name_of, parse as parse_urn, provider_urn};
