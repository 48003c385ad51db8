#!/usr/bin/env bash
# Makes what compose.yaml needs and keeps out of it: the API and sensor
# tokens in ./secrets, and the ClickHouse passwords (with their SHA-256 for
# users.xml), the cluster secret and the cursor secret in ./.env. Run it once
# from anywhere; it never replaces a file that exists, so running it again
# changes nothing. Delete a file to make it anew.
set -euo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
secrets="$dir/secrets"
env_file="$dir/.env"

rand() { head -c 48 /dev/urandom | base64 -w0 | tr -d '/+=' | cut -c1-32; }
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# The directory is private; the files in it are readable by the containers'
# users (compose bind-mounts them with these modes).
umask 022
mkdir -p "$secrets"
chmod 0700 "$secrets"

made=()
token_file() { # NAME: one fresh token, unless the file exists
    local f="$secrets/$1"
    if [[ ! -s $f ]]; then
        rand > "$f.tmp" && mv "$f.tmp" "$f"
        made+=("secrets/$1")
    fi
}
token_file ingest.tokens
token_file api.tokens
token_file analyst.tokens
if [[ ! -s $secrets/sensor.token ]]; then
    head -n 1 "$secrets/ingest.tokens" > "$secrets/sensor.token"
    made+=("secrets/sensor.token")
fi

if [[ ! -s $env_file ]]; then
    ingest_pw=$(rand) query_pw=$(rand) analyst_pw=$(rand)
    umask 077
    cat > "$env_file.tmp" <<EOT
# Made by init-secrets.sh. Compose reads it for the \${...} in compose.yaml.
NETVIEW_CH_INGEST_PASSWORD=$ingest_pw
NETVIEW_CH_INGEST_PASSWORD_SHA256=$(sha256 "$ingest_pw")
NETVIEW_CH_QUERY_PASSWORD=$query_pw
NETVIEW_CH_QUERY_PASSWORD_SHA256=$(sha256 "$query_pw")
NETVIEW_CH_ANALYST_PASSWORD=$analyst_pw
NETVIEW_CH_ANALYST_PASSWORD_SHA256=$(sha256 "$analyst_pw")
NETVIEW_CLUSTER_SECRET=$(rand)
NETVIEW_CURSOR_SECRET=$(rand)
EOT
    mv "$env_file.tmp" "$env_file"
    made+=(".env")
fi

if ((${#made[@]})); then
    echo "made: ${made[*]} (in $dir)"
else
    echo "nothing to do: every secret exists (in $dir)"
fi
echo "sensor token:  $(cat "$secrets/sensor.token")"
echo "analyst SQL:   clickhouse-client --host 127.0.0.1 --user analyst --password \"\$(grep ^NETVIEW_CH_ANALYST_PASSWORD= $env_file | cut -d= -f2)\" --database netview"
