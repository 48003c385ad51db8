#!/usr/bin/env bash
# Makes what compose.yaml needs and keeps out of it: the API tokens, the
# sensors' enrollment secrets and nginx's TLS certificate in ./secrets, and
# the ClickHouse passwords (with their SHA-256 for users.xml), the cluster
# secret and the cursor secret in ./.env. Run it once from anywhere; it never
# replaces a file that exists, so running it again changes nothing. Delete a
# file to make it anew (secrets/tls/server.* to renew the certificate).
#
# The certificate nginx serves is signed by a CA of this stack's own
# (secrets/tls/ca.crt, which sensors trust with --sensor.ca-file) for
# localhost, 127.0.0.1, ::1, this host's names, and the names and addresses
# in $NETVIEW_TLS_NAMES (comma-separated: the names sensors reach this host
# by). Needs openssl.
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
# ingest.tokens: the static enrollment secrets (sensors enroll with one for
# a key of their own); the compose sensor's is the first.
token_file ingest.tokens
token_file api.tokens
token_file analyst.tokens
token_file admin.tokens
if [[ ! -s $secrets/sensor.enroll-secret ]]; then
    head -n 1 "$secrets/ingest.tokens" > "$secrets/sensor.enroll-secret"
    made+=("secrets/sensor.enroll-secret")
fi

# TLS for nginx: a CA (kept, to sign renewed certificates) and a server
# certificate it signs. ECDSA P-256; the server certificate lasts 397 days.
tls="$secrets/tls"
mkdir -p "$tls"
if [[ ! -s $tls/ca.crt || ! -s $tls/ca.key ]]; then
    command -v openssl > /dev/null || { echo "init-secrets.sh: openssl is needed to make the TLS certificate" >&2; exit 1; }
    rm -f "$tls/server.crt" "$tls/server.key" # signed by another CA
    cat > "$tls/ca.cnf" <<'EOT'
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = Netview compose CA
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOT
    (umask 077 && openssl req -x509 -new -config "$tls/ca.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -keyout "$tls/ca.key.tmp" -out "$tls/ca.crt.tmp" -days 3650 2> /dev/null)
    rm -f "$tls/ca.cnf"
    chmod 0644 "$tls/ca.crt.tmp" # handed to every sensor; the key stays 0600
    mv "$tls/ca.key.tmp" "$tls/ca.key" && mv "$tls/ca.crt.tmp" "$tls/ca.crt"
    made+=("secrets/tls/ca.crt" "secrets/tls/ca.key")
fi
if [[ ! -s $tls/server.crt || ! -s $tls/server.key ]]; then
    command -v openssl > /dev/null || { echo "init-secrets.sh: openssl is needed to make the TLS certificate" >&2; exit 1; }
    sans="DNS:localhost,IP:127.0.0.1,IP:::1"
    for n in $(hostname 2> /dev/null) $(hostname -f 2> /dev/null) ${NETVIEW_TLS_NAMES:+${NETVIEW_TLS_NAMES//,/ }}; do
        if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then n="IP:$n"; else n="DNS:$n"; fi
        [[ ,$sans, == *,$n,* ]] || sans+=",$n"
    done
    cat > "$tls/server.cnf" <<EOT
[req]
distinguished_name = dn
prompt = no
[dn]
CN = netview
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $sans
EOT
    (umask 077 && openssl req -new -config "$tls/server.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tls/server.key.tmp" -out "$tls/server.csr" 2> /dev/null)
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -days 397 -extfile "$tls/server.cnf" -extensions server -out "$tls/server.crt.tmp" 2> /dev/null
    rm -f "$tls/server.cnf" "$tls/server.csr"
    # nginx's master process (root in its container) reads the key; the
    # folder above is private.
    chmod 0644 "$tls/server.key.tmp"
    mv "$tls/server.key.tmp" "$tls/server.key" && mv "$tls/server.crt.tmp" "$tls/server.crt"
    made+=("secrets/tls/server.crt" "secrets/tls/server.key")
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
echo "enrollment secret (sensors): $(cat "$secrets/sensor.enroll-secret")"
echo "admin token:   $(cat "$secrets/admin.tokens")"
echo "TLS:           sensors elsewhere trust $tls/ca.crt (--sensor.ca-file) or pin --sensor.pin-sha256=$(openssl x509 -in "$tls/server.crt" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
echo "               the certificate is for: $(openssl x509 -in "$tls/server.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')"
echo "analyst SQL:   clickhouse-client --host 127.0.0.1 --user analyst --password \"\$(grep ^NETVIEW_CH_ANALYST_PASSWORD= $env_file | cut -d= -f2)\" --database netview"
