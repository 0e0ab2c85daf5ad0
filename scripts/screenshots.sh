#!/usr/bin/env bash
# Screenshots of the web UI's main pages in both themes, into docs/screenshots/ (shown in the
# README). Needs what `bash scripts/test.sh` installs: Terraform in .tools/, chromium and
# chromium-driver.
#
#   bash scripts/screenshots.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export STATEHOUSE_TERRAFORM="${STATEHOUSE_TERRAFORM:-$root/.tools/terraform}"
export STATEHOUSE_SCREENSHOTS="$root/docs/screenshots"
cargo test -p statehouse --test ui_screenshots -- --ignored --nocapture
echo "screenshots written to $STATEHOUSE_SCREENSHOTS"
