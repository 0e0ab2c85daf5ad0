#!/usr/bin/env bash
# Local servers for the storage target tests of crates/backup: S3 (moto), Azure Blob (Azurite),
# SFTP (OpenSSH's sshd, as the current user), FTP (pyftpdlib) and WebDAV (wsgidav), each on a
# free loopback port with its data in one temp dir.
#
#   eval "$(bash scripts/test-servers.sh start)"   # prints `export STATEHOUSE_TEST_…` lines
#   bash scripts/test-servers.sh stop [DIR]        # DIR defaults to $STATEHOUSE_TEST_SERVERS_DIR
#
# Needs the tools scripts/test.sh installs: .tools/venv (moto[server], boto3, pyftpdlib,
# wsgidav, cheroot, azure-storage-blob), .tools/npm (azurite) and Debian's openssh-server.
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR="$root/.tools"
VENV="$TOOLS_DIR/venv"
NPM_BIN="$TOOLS_DIR/npm/node_modules/.bin"

die() {
    echo "test-servers: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until something listens on 127.0.0.1:$2 (a TCP connect only: moto counts every HTTP
# request against its unauthenticated set-up budget).
wait_port() {
    local name=$1 port=$2 log=$3 i
    for i in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "test-servers: $name did not listen on port $port within 60 s; its log ($log):" >&2
    tail -n 30 "$log" >&2 || true
    return 1
}

# Starts "$@" in the background with its output in $dir/$name.log and records its pid.
spawn() {
    local name=$1
    shift
    "$@" >"$dir/$name.log" 2>&1 &
    echo "$!" >>"$dir/pids"
}

start() {
    [ -x "$VENV/bin/moto_server" ] || die "moto is missing from $VENV: run scripts/test.sh (or its install_test_server_tools step)"
    [ -x "$NPM_BIN/azurite-blob" ] || die "azurite is missing from $TOOLS_DIR/npm: run scripts/test.sh"
    [ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing: apt-get install openssh-server"

    dir=$(mktemp -d /tmp/statehouse-test-servers.XXXXXX)
    : >"$dir/pids"
    # Anything that fails from here on stops what was started.
    trap 'stop_dir "$dir" >/dev/null 2>&1 || true' ERR

    # ---- S3: moto, with IAM authentication on after the four set-up calls -------------------
    local s3_port
    s3_port=$(free_port)
    spawn moto env INITIAL_NO_AUTH_ACTION_COUNT=4 "$VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port"
    wait_port moto "$s3_port" "$dir/moto.log"
    local s3_keys
    s3_keys=$("$VENV/bin/python" - "http://127.0.0.1:$s3_port" <<'PY'
import json, sys
import boto3
endpoint = sys.argv[1]
anon = dict(endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **anon)
iam.create_user(UserName="statehouse")
iam.put_user_policy(UserName="statehouse", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="statehouse")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket="statehouse-test")
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
    )
    local s3_id=${s3_keys%% *} s3_secret=${s3_keys#* }

    # ---- Azure Blob: Azurite with the well-known development account ------------------------
    local az_port az_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    az_port=$(free_port)
    mkdir -p "$dir/azurite"
    spawn azurite "$NPM_BIN/azurite-blob" --blobHost 127.0.0.1 --blobPort "$az_port" \
        --location "$dir/azurite" --skipApiVersionCheck --silent
    wait_port azurite "$az_port" "$dir/azurite.log"
    local az_endpoint="http://127.0.0.1:$az_port/devstoreaccount1"
    "$VENV/bin/python" - "$az_endpoint" "$az_key" <<'PY'
import sys
from azure.storage.blob import BlobServiceClient
endpoint, key = sys.argv[1], sys.argv[2]
client = BlobServiceClient(account_url=endpoint,
                           credential={"account_name": "devstoreaccount1", "account_key": key})
client.create_container("statehouse-test")
PY

    # ---- SFTP: our own sshd as the current user, key login only ------------------------------
    local ssh_port user
    ssh_port=$(free_port)
    user=$(id -un)
    mkdir -p "$dir/ssh" "$dir/sftp-root"
    chmod 700 "$dir/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh/client_key"
    cp "$dir/ssh/client_key.pub" "$dir/ssh/authorized_keys"
    cat >"$dir/ssh/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $dir/ssh/host_key
PidFile $dir/ssh/sshd.pid
AuthorizedKeysFile $dir/ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
    if [ "$(id -u)" = 0 ]; then
        # sshd started by root wants its privilege separation directory.
        mkdir -p /run/sshd
    fi
    spawn sshd /usr/sbin/sshd -D -e -f "$dir/ssh/sshd_config"
    wait_port sshd "$ssh_port" "$dir/sshd.log"

    # ---- FTP: pyftpdlib -----------------------------------------------------------------------
    local ftp_port
    ftp_port=$(free_port)
    mkdir -p "$dir/ftp-root"
    spawn ftp "$VENV/bin/python" -m pyftpdlib -i 127.0.0.1 -p "$ftp_port" -w \
        -d "$dir/ftp-root" -u statehouse -P ftp-secret
    wait_port pyftpdlib "$ftp_port" "$dir/ftp.log"

    # ---- WebDAV: wsgidav with one basic-auth user --------------------------------------------
    local dav_port
    dav_port=$(free_port)
    mkdir -p "$dir/webdav-root"
    cat >"$dir/wsgidav.json" <<EOF
{
    "host": "127.0.0.1",
    "port": $dav_port,
    "server": "cheroot",
    "provider_mapping": {"/": "$dir/webdav-root"},
    "http_authenticator": {"accept_basic": true, "accept_digest": false, "default_to_digest": false},
    "simple_dc": {"user_mapping": {"*": {"statehouse": {"password": "dav-secret"}}}},
    "verbose": 1
}
EOF
    spawn wsgidav "$VENV/bin/wsgidav" --config "$dir/wsgidav.json"
    wait_port wsgidav "$dav_port" "$dir/wsgidav.log"

    trap - ERR
    cat >"$dir/env" <<EOF
export STATEHOUSE_TEST_SERVERS_DIR='$dir'
export STATEHOUSE_TEST_S3_ENDPOINT='http://127.0.0.1:$s3_port'
export STATEHOUSE_TEST_S3_BUCKET='statehouse-test'
export STATEHOUSE_TEST_S3_ACCESS_KEY_ID='$s3_id'
export STATEHOUSE_TEST_S3_SECRET_ACCESS_KEY='$s3_secret'
export STATEHOUSE_TEST_AZBLOB_ENDPOINT='$az_endpoint'
export STATEHOUSE_TEST_AZBLOB_CONTAINER='statehouse-test'
export STATEHOUSE_TEST_AZBLOB_ACCOUNT_NAME='devstoreaccount1'
export STATEHOUSE_TEST_AZBLOB_ACCOUNT_KEY='$az_key'
export STATEHOUSE_TEST_SFTP_HOST='127.0.0.1'
export STATEHOUSE_TEST_SFTP_PORT='$ssh_port'
export STATEHOUSE_TEST_SFTP_USER='$user'
export STATEHOUSE_TEST_SFTP_KEY_FILE='$dir/ssh/client_key'
export STATEHOUSE_TEST_SFTP_ROOT='$dir/sftp-root'
export STATEHOUSE_TEST_FTP_ENDPOINT='ftp://127.0.0.1:$ftp_port'
export STATEHOUSE_TEST_FTP_USER='statehouse'
export STATEHOUSE_TEST_FTP_PASSWORD='ftp-secret'
export STATEHOUSE_TEST_WEBDAV_ENDPOINT='http://127.0.0.1:$dav_port'
export STATEHOUSE_TEST_WEBDAV_USER='statehouse'
export STATEHOUSE_TEST_WEBDAV_PASSWORD='dav-secret'
EOF
    cat "$dir/env"
}

stop_dir() {
    local dir=$1 pid
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    case "$dir" in
        /tmp/statehouse-test-servers.*) ;;
        *) die "refusing to stop $dir: not a directory made by this script" ;;
    esac
    if [ -f "$dir/pids" ]; then
        while read -r pid; do
            [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
        done <"$dir/pids"
        # Give them a moment, then make sure.
        sleep 0.5
        while read -r pid; do
            [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
        done <"$dir/pids"
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop_dir "${2:-${STATEHOUSE_TEST_SERVERS_DIR:-}}" ;;
    *)
        echo "usage: $0 start | stop [DIR]" >&2
        exit 2
        ;;
esac
