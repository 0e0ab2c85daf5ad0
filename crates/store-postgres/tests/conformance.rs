//! The store conformance suite on PostgreSQL: each test gets a schema of its own in the server
//! named by `STATEHOUSE_TEST_PG_URL` (dropped afterwards); the peer store is a second pool on
//! that schema, as a second statehouse process would be.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fresh, peer};

statehouse_store_conformance::conformance_tests!(fresh(), peer);
