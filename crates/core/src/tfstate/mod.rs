//! Reading what is inside a Terraform state (format version 4): instance addresses, the
//! difference between two versions, outputs, the resource search index entries, and a serial
//! rewrite for rollback. Bodies are read with borrowed, raw JSON so large states stay cheap.
//! ([`crate::statefile`] reads only the header every write needs.)

mod address;
mod diff;
pub(crate) mod identifier;
mod index;
mod nesting;
mod outputs;
mod path;
mod raw;
mod serial;

pub use address::{IndexKey, Mode, instance_address};
pub use diff::{
    AttributeChange, InstanceChange, InstanceRef, OutputChange, OutputsDiff, StateDiff,
    StateHeader, StatusChange, diff,
};
pub(crate) use index::index_entries_of;
pub use index::{
    IdentifyingAttributes, IndexedResource, MAX_INDEXED_TEXT, index_entries, truncated,
};
pub use nesting::TOO_DEEP;
pub(crate) use nesting::readable;
pub use outputs::{Output, outputs};
pub use path::SENSITIVE_MASK;
pub(crate) use path::{Step, format_path};
pub use raw::SUPPORTED_FORMAT_VERSION;
pub(crate) use raw::parse_any;
pub use serial::with_serial;
