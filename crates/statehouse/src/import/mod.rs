//! `statehouse import …`: copy what another backend holds into statehouse, in one go. Each
//! importer reads everything and checks it before writing anything.
//!
//! - `tf_pg`: Terraform's `pg` backend (one row per workspace).
//! - `pulumi_pg`: Pulumi's `postgres://` DIY backend (one row per object).
//! - `s3`: a bucket Pulumi's DIY backend used (any S3 server).
//!
//! The two Pulumi importers share `pulumi_objects`: the checks and the writes, which go through
//! the S3 endpoint's own PutObject path.

mod pulumi_objects;
mod pulumi_pg;
mod s3;
mod tf_pg;

pub use pulumi_pg::{PulumiPgArgs, pulumi_pg};
pub use s3::{S3Args, s3};
pub use tf_pg::{TfPgArgs, tf_pg};
