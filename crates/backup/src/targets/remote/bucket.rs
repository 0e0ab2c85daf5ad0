//! Reading a folder of an S3 bucket object by object, for `statehouse import s3`: the same
//! operator as an S3 backup target (every request under the outbound policy, errors explained
//! the same way), used to list and read instead of to upload.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use opendal::ErrorKind;
use statehouse_outbound::OutboundPolicy;

use super::RemoteTarget;
use crate::pipeline::BackupError;
use crate::targets::spec::{S3Spec, TargetSpec};

/// One object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketObject {
    /// The key below the spec's `prefix`.
    pub key: String,
    pub size: u64,
    /// `LastModified`, in milliseconds since the Unix epoch, when the service gave it.
    pub modified_ms: Option<i64>,
}

/// A bucket (below its spec's `prefix`) to read from.
pub struct BucketReader {
    target: RemoteTarget,
}

impl BucketReader {
    /// Checks the settings; nothing is contacted yet.
    pub fn s3(spec: S3Spec, policy: Arc<OutboundPolicy>) -> Result<BucketReader, BackupError> {
        let spec = TargetSpec::S3(spec);
        spec.validate()?;
        Ok(BucketReader {
            target: RemoteTarget::open(&spec, policy)?,
        })
    }

    /// "S3 bucket \"name\"", for messages.
    pub fn label(&self) -> &str {
        &self.target.explainer.label
    }

    /// Every object whose key starts with the folder `folder` (ending in `/`), at any depth,
    /// in key order. An absent folder lists nothing.
    pub async fn list_all(&self, folder: &str) -> Result<Vec<BucketObject>, BackupError> {
        let op = self.target.op().await?;
        let entries = match op.list_with(folder).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.target.failure(&format!("cannot list {folder}"), &e)),
        };
        let mut objects: Vec<BucketObject> = entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| BucketObject {
                key: e.path().to_owned(),
                size: e.metadata().content_length(),
                modified_ms: e.metadata().last_modified().and_then(|t| {
                    let at = SystemTime::from(t).duration_since(UNIX_EPOCH).ok()?;
                    i64::try_from(at.as_millis()).ok()
                }),
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The whole object `key`, in memory.
    pub async fn read(&self, key: &str) -> Result<Vec<u8>, BackupError> {
        let op = self.target.op().await?;
        match op.read(key).await {
            Ok(buffer) => Ok(buffer.to_vec()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BackupError::NotFound(format!(
                "{key} is no longer in the {} (deleted while the import read the bucket?)",
                self.label()
            ))),
            Err(e) => Err(self.target.failure(&format!("cannot read {key}"), &e)),
        }
    }
}
