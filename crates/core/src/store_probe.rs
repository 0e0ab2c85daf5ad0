//! What `statehouse doctor` learns about a store's database without changing anything in it.

/// A look at a database: where it is, whether a statehouse store lives there and how far its
/// migrations are, and what the database server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreProbe {
    /// Where the store is, for messages (never a password).
    pub place: String,
    /// The database server's version (PostgreSQL) or library version (SQLite).
    pub version: String,
    /// statehouse's tables are there.
    pub holds_store: bool,
    /// Versions of the migrations applied successfully.
    pub applied: Vec<i64>,
    /// Versions of the migrations this binary has.
    pub known: Vec<i64>,
    /// Writes would be refused (a PostgreSQL standby, a read-only file).
    pub read_only: bool,
    /// The database server's clock (PostgreSQL), milliseconds since the Unix epoch.
    pub server_now_millis: Option<i64>,
}

impl StoreProbe {
    /// Migrations of this binary not applied yet (a newer binary than the store).
    pub fn pending(&self) -> Vec<i64> {
        self.known
            .iter()
            .filter(|v| !self.applied.contains(v))
            .copied()
            .collect()
    }

    /// Migrations applied that this binary does not know (an older binary than the store).
    pub fn unknown(&self) -> Vec<i64> {
        self.applied
            .iter()
            .filter(|v| !self.known.contains(v))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_unknown_migrations() {
        let probe = StoreProbe {
            place: "here".into(),
            version: "1".into(),
            holds_store: true,
            applied: vec![1, 2, 4],
            known: vec![1, 2, 3],
            read_only: false,
            server_now_millis: None,
        };
        assert_eq!(probe.pending(), [3]);
        assert_eq!(probe.unknown(), [4]);
    }
}
