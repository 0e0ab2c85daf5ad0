#!/usr/bin/env bash
# Screenshots of the web UI's main pages in both themes, into docs/screenshots/ (shown in the
# README). Needs what `bash scripts/test.sh` installs: Terraform in .tools/, chromium,
# chromium-driver and PostgreSQL 15 (a throwaway cluster is started for the backup pages).
#
#   bash scripts/screenshots.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export STATEHOUSE_TERRAFORM="${STATEHOUSE_TERRAFORM:-$root/.tools/terraform}"
export STATEHOUSE_SCREENSHOTS="$root/docs/screenshots"
pg_dir=$(mktemp -d /tmp/statehouse-screenshots-pg.XXXXXX)
chmod 755 "$pg_dir"
trap 'bash "$root/scripts/pg-cluster.sh" stop "$pg_dir" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
STATEHOUSE_TEST_PG_URL=$(bash "$root/scripts/pg-cluster.sh" start "$pg_dir/data" 56499)
export STATEHOUSE_TEST_PG_URL
cargo test -p statehouse --test ui_screenshots -- --ignored --nocapture
echo "screenshots written to $STATEHOUSE_SCREENSHOTS"
