//! The master key against the store: verifying the key file's keys (at start, and the new keys
//! a running server meets in a changed file) and re-wrapping every sealed record under the
//! sealing key (rotation).

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::Services;
use crate::crypto::{self, MasterKey};
use crate::sealed::{KeyCheck, KeyFilter, SealedKind, WrappedKeyRef};
use crate::{Error, Result};

/// Wrapped keys re-wrapped per store round trip.
const REWRAP_BATCH: i64 = 500;
/// How often a running server looks for keys of a changed key file that are not verified yet.
pub const KEY_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Services {
    fn key_file_name(&self) -> String {
        self.cipher
            .key_file()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the keyring".into())
    }

    /// Records a new master key's check value before it is written to the key file, so
    /// servers meeting it there verify it against the store before sealing anything with it.
    /// False when that key id had a check value already (the first one stays).
    pub async fn record_key_check(&self, check: &KeyCheck) -> Result<bool> {
        self.store.record_key_check(check).await
    }

    /// Checks the master key file's keys that are not verified yet against this store (the
    /// keys in use, or those of a changed file waiting for verification, which is taken over
    /// once they all pass), and lets each that passes seal new data:
    /// - every master key id the store's data is wrapped under must be in the file;
    /// - a key whose id has a recorded check value must match it;
    /// - a key without one (a new key, or a database made before check values existed) must
    ///   open a data key wrapped under its id when there is one; then its check value is
    ///   recorded.
    ///
    /// Returns the ids verified now. The error names the key and the file and says what to
    /// do; keys after the failing one stay unverified.
    pub async fn verify_master_keys(&self) -> Result<Vec<String>> {
        let unverified = self.cipher.unverified_keys()?;
        if unverified.is_empty() {
            return Ok(Vec::new());
        }
        let ring = self.cipher.candidate_keyring()?;
        let file = self.key_file_name();
        let in_use = self.store.key_ids_in_use().await?;
        if let Some(missing) = in_use.iter().find(|id| ring.find(id).is_none()) {
            return Err(Error::Config(format!(
                "the database holds data encrypted with master key {missing}, which is not in the master key file {file}. \
                 Use the key file that belongs to this database (all replicas share one; a key replaced by \
                 `statehouse key rotate` stays in it as a `retired` line until nothing needs it)"
            )));
        }
        let mut checks: HashMap<String, KeyCheck> = self
            .store
            .key_checks()
            .await?
            .into_iter()
            .map(|c| (c.key_id.clone(), c))
            .collect();
        let mut verified = Vec::new();
        for key in unverified {
            let id = key.id().to_owned();
            if !checks.contains_key(&id) {
                if in_use.contains(&id)
                    && let Some(sample) = self.wrapped_key_under(&id).await?
                    && !crypto::opens(&key, &sample.wrapped_key, sample.binding())
                {
                    return Err(Error::Config(format!(
                        "master key {id} in {file} does not open the data wrapped under that id: the file is damaged \
                         (a changed character?) or belongs to another installation. Put the right key file back \
                         (from your backup of it)"
                    )));
                }
                let check = KeyCheck {
                    key_id: id.clone(),
                    check_value: key.check_value()?,
                    recorded_at: self.now(),
                };
                if !self.store.record_key_check(&check).await? {
                    // Another process recorded one first: compare with theirs.
                    checks.extend(
                        self.store
                            .key_checks()
                            .await?
                            .into_iter()
                            .map(|c| (c.key_id.clone(), c)),
                    );
                } else {
                    checks.insert(id.clone(), check);
                }
            }
            if !checks
                .get(&id)
                .is_some_and(|c| key.matches_check(&c.check_value))
            {
                return Err(mismatch(&key, &file));
            }
            self.cipher.mark_verified(&key)?;
            verified.push(id);
        }
        if self.cipher.promote_pending()? {
            tracing::info!(
                primary = ring.primary().id(),
                "following the changed master key file"
            );
        }
        Ok(verified)
    }

    async fn wrapped_key_under(&self, key_id: &str) -> Result<Option<WrappedKeyRef>> {
        for kind in SealedKind::ALL {
            let found = self
                .store
                .wrapped_keys(kind, KeyFilter::Under(key_id), 1)
                .await?;
            if let Some(first) = found.into_iter().next() {
                return Ok(Some(first));
            }
        }
        Ok(None)
    }

    /// Whether any sealed record of any kind is wrapped under `key_id`.
    pub async fn key_in_use(&self, key_id: &str) -> Result<bool> {
        Ok(self.wrapped_key_under(key_id).await?.is_some())
    }

    /// Re-wraps every sealed record of every [`SealedKind`] under the sealing key; returns how
    /// many moved. Records changed meanwhile by someone else are looked at again.
    pub async fn rewrap_all_keys(&self) -> Result<u64> {
        let sealing = self.cipher.sealing_key_id()?;
        let mut moved = 0;
        for kind in SealedKind::ALL {
            loop {
                let rows = self
                    .store
                    .wrapped_keys(kind, KeyFilter::NotUnder(&sealing), REWRAP_BATCH)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let (key_id, wrapped) = self
                        .cipher
                        .rewrap(&row.key_id, &row.wrapped_key, row.binding())
                        .map_err(|e| {
                            Error::Config(format!(
                                "re-wrapping {} {} (under master key {}): {e}",
                                kind.as_str(),
                                row.row_id,
                                row.key_id
                            ))
                        })?;
                    if key_id != sealing {
                        return Err(Error::Conflict(format!(
                            "the master key changed from {sealing} to {key_id} while re-wrapping; run the rotation again"
                        )));
                    }
                    if self
                        .store
                        .replace_wrapped_key(row, &key_id, &wrapped)
                        .await?
                    {
                        moved += 1;
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Verifies the keys of a changed key file while the server runs (every
    /// [`KEY_CHECK_EVERY`]), until `stop` turns true. A key that fails stays unverified (it
    /// never seals); the failure is logged once.
    pub async fn run_key_checks(self, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(KEY_CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = String::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticks.tick() => {}
            }
            match self.verify_master_keys().await {
                Ok(ids) => {
                    for id in ids {
                        tracing::info!(key = %id, "master key verified against the store");
                    }
                    last_error.clear();
                }
                Err(e) => {
                    let text = e.to_string();
                    if text != last_error {
                        tracing::error!(error = %text, "a key of the changed master key file is not used");
                        last_error = text;
                    }
                }
            }
        }
    }
}

fn mismatch(key: &MasterKey, file: &str) -> Error {
    Error::Config(format!(
        "master key {} in {file} does not match the key this database recorded under that id: the file is \
         damaged (a changed character?) or belongs to another installation. Put the right key file back \
         (from your backup of it)",
        key.id()
    ))
}
