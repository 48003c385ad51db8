#!/usr/bin/env bash
# Installs netview-sensor on this host as the systemd service
# netview-sensor.service, and starts it.
#
#   sudo deploy/systemd/install.sh --ingest https://ingest.example.net/v1/heartbeat \
#        --enroll-secret-file ./enroll.secret [--ca-file ./ca.crt] [--pin-sha256 HEX] \
#        [--binary bin/netview-sensor] [--flavor telecom]
#
# The sensor enrolls once with the enrollment secret (a static secret of
# ingest's --ingest.token-file, or an nve_... secret an admin issued) for a
# key of its own, kept in its state folder. The secret can also come from
# $NETVIEW_SENSOR_ENROLL_SECRET (never from the command line, where every
# user's ps would show it).
#
# What it installs:
#   /usr/local/bin/netview-sensor                 the binary (0755)
#   /etc/systemd/system/netview-sensor.service    the unit beside this script (0644)
#   /etc/netview/sensor.env                       the ingest URL and extra flags (0644)
#   /etc/netview/sensor.enroll-secret             the enrollment secret (0600, root only)
#   /etc/netview/ingest-ca.crt                    with --ca-file: the CA to trust (0644)
# and enables the service; the sensor keeps its state (and its key) in
# /var/lib/netview-sensor (the unit's StateDirectory).
#
# Running it again is safe: files already as wanted are left alone, the
# secret and settings are kept unless given again, and the service is
# restarted so that a new binary or setting takes effect. An install from
# before enrollment (/etc/netview/sensor.token) has its token moved to the
# enrollment secret: a static ingest token is also an enrollment secret.
#
# Options:
#   --ingest URL       ingest heartbeat URL, https:// (needed the first time;
#                      http:// only to a node on this host or a trusted network)
#   --enroll-secret-file FILE
#                      file holding the enrollment secret: its first line that
#                      is not blank or a # comment (or
#                      $NETVIEW_SENSOR_ENROLL_SECRET; needed the first time)
#   --token-file FILE  the same as --enroll-secret-file (its older name)
#   --ca-file FILE     PEM CA certificate(s) to trust for the https ingest URL
#                      instead of the system's (--sensor.ca-file)
#   --pin-sha256 PIN   pin ingest's public key: the hex SHA-256 of its SPKI
#                      (--sensor.pin-sha256)
#   --binary FILE      the netview-sensor binary (default: netview-sensor beside
#                      this script, else bin/netview-sensor of the repository)
#   --flavor NAME      standard (default) or telecom
#   --no-start         install and enable, but do not (re)start
#   --destdir DIR      install under DIR instead of / (also $DESTDIR): for
#                      packaging and tests. Enables the unit with
#                      systemctl --root (or a symlink), starts nothing, and
#                      does not need root.
#   --dry-run          print what would be done, change nothing
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unit_name=netview-sensor.service

die() { echo "install.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo pipefail$/{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

destdir=${DESTDIR:-}
ingest=""
token_src=""
ca_src=""
pin=""
binary=""
flavor=""
start=1
dry_run=0
while (($#)); do
    case $1 in
        --ingest) ingest=${2:?--ingest needs a URL}; shift 2 ;;
        --ingest=*) ingest=${1#*=}; shift ;;
        --enroll-secret-file | --token-file) token_src=${2:?$1 needs a file}; shift 2 ;;
        --enroll-secret-file=* | --token-file=*) token_src=${1#*=}; shift ;;
        --ca-file) ca_src=${2:?--ca-file needs a file}; shift 2 ;;
        --ca-file=*) ca_src=${1#*=}; shift ;;
        --pin-sha256) pin=${2:?--pin-sha256 needs a hex SHA-256}; shift 2 ;;
        --pin-sha256=*) pin=${1#*=}; shift ;;
        --binary) binary=${2:?--binary needs a file}; shift 2 ;;
        --binary=*) binary=${1#*=}; shift ;;
        --flavor) flavor=${2:?--flavor needs a name}; shift 2 ;;
        --flavor=*) flavor=${1#*=}; shift ;;
        --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
        --destdir=*) destdir=${1#*=}; shift ;;
        --no-start) start=0; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# A real install changes the system: root only. A staged one (DESTDIR) or a
# dry run touches nothing outside DIR.
if [[ -z $destdir ]] && ((!dry_run)) && [[ $(id -u) -ne 0 ]]; then
    die "must run as root (or with --destdir DIR or --dry-run)"
fi
if [[ -n $destdir ]]; then
    [[ $destdir == /* ]] || destdir="$PWD/$destdir"
    destdir=${destdir%/}
fi

bin_path=/usr/local/bin/netview-sensor
unit_path=/etc/systemd/system/$unit_name
conf_dir=/etc/netview
env_path=$conf_dir/sensor.env
token_path=$conf_dir/sensor.enroll-secret
old_token_path=$conf_dir/sensor.token
ca_path=$conf_dir/ingest-ca.crt
state_dir=/var/lib/netview-sensor

# run CMD...: do it, or print it in a dry run.
run() {
    if ((dry_run)); then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# put MODE CONTENT_FILE TARGET: make TARGET hold CONTENT_FILE's bytes with
# MODE, replacing it only if it differs (atomically: temp file, rename).
put() {
    local mode=$1 src=$2 dst=$destdir$3
    if [[ -f $dst ]] && cmp -s "$src" "$dst" && [[ $(stat -c %a "$dst") == "${mode#0}" ]]; then
        echo "unchanged  $3"
        return
    fi
    echo "install    $3 ($mode)"
    run mkdir -p "$(dirname "$dst")"
    (umask 077 && run install -m "$mode" "$src" "$dst.tmp.$$")
    run mv -f "$dst.tmp.$$" "$dst"
}

umask 022
# Scratch space for the files before they are installed; private, since the
# secret passes through it.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0700 "$work"

# The binary.
if [[ -z $binary ]]; then
    for c in "$script_dir/netview-sensor" "$script_dir/../../bin/netview-sensor"; do
        if [[ -f $c ]]; then binary=$c; break; fi
    done
    [[ -n $binary ]] || die "no netview-sensor binary: run make build, or pass --binary FILE"
fi
[[ -f $binary ]] || die "binary $binary: no such file"

# The settings: given now, else kept from the last install.
old() { # VAR: its value in the installed env file, if any
    [[ -f $destdir$env_path ]] || return 0
    sed -n "s/^$1=//p" "$destdir$env_path" | tail -n 1
}
if [[ -z $ingest ]]; then
    ingest=$(old NETVIEW_SENSOR_INGEST)
    [[ -n $ingest ]] || die "--ingest URL is needed the first time"
fi
[[ $ingest =~ ^https?://[^[:space:]]+$ ]] || die "--ingest $ingest: want an http:// or https:// URL"
if [[ -z $flavor ]]; then
    flavor=$(old NETVIEW_SENSOR_ARGS | sed -n 's/.*--sensor\.flavor=\([a-z]*\).*/\1/p')
    flavor=${flavor:-standard}
fi
[[ $flavor == standard || $flavor == telecom ]] || die "--flavor $flavor: want standard or telecom"

# TLS: a CA file and a pin, given now or kept.
if [[ -z $pin ]]; then
    pin=$(old NETVIEW_SENSOR_ARGS | sed -n 's/.*--sensor\.pin-sha256=\([0-9a-fA-F]*\).*/\1/p')
fi
[[ -z $pin || $pin =~ ^[0-9a-fA-F]{64}$ ]] || die "--pin-sha256 $pin: want the 64 hex digits of the SHA-256"
ca=0
if [[ -n $ca_src ]]; then
    [[ -r $ca_src ]] || die "CA file $ca_src: cannot read it"
    grep -q -- '-----BEGIN CERTIFICATE-----' "$ca_src" || die "CA file $ca_src: no PEM certificate in it"
    ca=1
elif [[ $(old NETVIEW_SENSOR_ARGS) == *--sensor.ca-file=* && -s $destdir$ca_path ]]; then
    cp "$destdir$ca_path" "$work/ca" && ca_src=$work/ca && ca=1
fi
if ((ca)) || [[ -n $pin ]]; then
    [[ $ingest == https://* ]] || die "--ca-file and --pin-sha256 need an https:// ingest URL"
fi
args="--sensor.flavor=$flavor"
if ((ca)); then args+=" --sensor.ca-file=$ca_path"; fi
if [[ -n $pin ]]; then args+=" --sensor.pin-sha256=$pin"; fi

# The enrollment secret: given now (file or environment), else kept (or
# taken from the token of an install from before enrollment). Only its
# first line without comments and spaces is used, as the sensor does.
first_token() { sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | { grep -m 1 . || true; }; }
env_secret=${NETVIEW_SENSOR_ENROLL_SECRET:-${NETVIEW_SENSOR_TOKEN:-}}
if [[ -n $token_src ]]; then
    [[ -r $token_src ]] || die "enrollment secret file $token_src: cannot read it"
    first_token < "$token_src" > "$work/token"
elif [[ -n $env_secret ]]; then
    printf '%s\n' "$env_secret" | first_token > "$work/token"
elif [[ -s $destdir$token_path ]]; then
    cp "$destdir$token_path" "$work/token"
elif [[ -s $destdir$old_token_path ]]; then
    first_token < "$destdir$old_token_path" > "$work/token"
else
    die "no enrollment secret: pass --enroll-secret-file FILE or set NETVIEW_SENSOR_ENROLL_SECRET"
fi
[[ -s $work/token ]] || die "the enrollment secret is empty"

cat > "$work/env" <<EOF
# Written by deploy/systemd/install.sh; read by $unit_name.
NETVIEW_SENSOR_INGEST=$ingest
NETVIEW_SENSOR_ARGS=$args
EOF

put 0755 "$binary" "$bin_path"
put 0644 "$script_dir/$unit_name" "$unit_path"
if ! [[ -d $destdir$conf_dir ]]; then
    run mkdir -p "$destdir$conf_dir"
fi
run chmod 0755 "$destdir$conf_dir"
put 0644 "$work/env" "$env_path"
put 0600 "$work/token" "$token_path"
if ((ca)); then
    put 0644 "$ca_src" "$ca_path"
fi
if [[ -e $destdir$old_token_path ]]; then
    echo "remove     $old_token_path (now $token_path)"
    run rm -f "$destdir$old_token_path"
fi

# Enable, and (on a real install) start or restart.
if [[ -n $destdir ]]; then
    if command -v systemctl > /dev/null; then
        run systemctl --root="$destdir" --quiet enable "$unit_name"
    else
        run mkdir -p "$destdir/etc/systemd/system/multi-user.target.wants"
        run ln -sfn "$unit_path" "$destdir/etc/systemd/system/multi-user.target.wants/$unit_name"
    fi
    echo "staged in $destdir (state will be in $state_dir)"
    exit 0
fi
run systemctl daemon-reload
run systemctl enable --quiet "$unit_name"
if ((start)); then
    run systemctl restart "$unit_name"
    echo "started $unit_name: journalctl -u $unit_name -f"
else
    echo "enabled $unit_name (not started): systemctl start $unit_name"
fi
