#!/usr/bin/env bash
# Installs netview-sensor on this host as the systemd service
# netview-sensor.service, and starts it.
#
#   sudo deploy/systemd/install.sh --ingest https://ingest.example.net/v1/heartbeat \
#        --token-file ./sensor.token [--binary bin/netview-sensor] [--flavor telecom]
#
# The token can also come from $NETVIEW_SENSOR_TOKEN (never from the command
# line, where every user's ps would show it).
#
# What it installs:
#   /usr/local/bin/netview-sensor                 the binary (0755)
#   /etc/systemd/system/netview-sensor.service    the unit beside this script (0644)
#   /etc/netview/sensor.env                       the ingest URL and extra flags (0644)
#   /etc/netview/sensor.token                     the token (0600, root only)
# and enables the service; the sensor keeps its state in /var/lib/netview-sensor
# (the unit's StateDirectory).
#
# Running it again is safe: files already as wanted are left alone, the
# token and settings are kept unless given again, and the service is
# restarted so that a new binary or setting takes effect.
#
# Options:
#   --ingest URL       ingest heartbeat URL (needed the first time)
#   --token-file FILE  file holding the sensor token (or $NETVIEW_SENSOR_TOKEN;
#                      needed the first time)
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
binary=""
flavor=""
start=1
dry_run=0
while (($#)); do
    case $1 in
        --ingest) ingest=${2:?--ingest needs a URL}; shift 2 ;;
        --ingest=*) ingest=${1#*=}; shift ;;
        --token-file) token_src=${2:?--token-file needs a file}; shift 2 ;;
        --token-file=*) token_src=${1#*=}; shift ;;
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
token_path=$conf_dir/sensor.token
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
# token passes through it.
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

# The token: given now (file or environment), else kept. Only its first
# token is used (a line, without comments and spaces), as the sensor does.
first_token() { sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' | { grep -m 1 . || true; }; }
if [[ -n $token_src ]]; then
    [[ -r $token_src ]] || die "token file $token_src: cannot read it"
    first_token < "$token_src" > "$work/token"
elif [[ -n ${NETVIEW_SENSOR_TOKEN:-} ]]; then
    printf '%s\n' "$NETVIEW_SENSOR_TOKEN" | first_token > "$work/token"
elif [[ -s $destdir$token_path ]]; then
    cp "$destdir$token_path" "$work/token"
else
    die "no token: pass --token-file FILE or set NETVIEW_SENSOR_TOKEN"
fi
[[ -s $work/token ]] || die "the token is empty"

cat > "$work/env" <<EOF
# Written by deploy/systemd/install.sh; read by $unit_name.
NETVIEW_SENSOR_INGEST=$ingest
NETVIEW_SENSOR_ARGS=--sensor.flavor=$flavor
EOF

put 0755 "$binary" "$bin_path"
put 0644 "$script_dir/$unit_name" "$unit_path"
if ! [[ -d $destdir$conf_dir ]]; then
    run mkdir -p "$destdir$conf_dir"
fi
run chmod 0755 "$destdir$conf_dir"
put 0644 "$work/env" "$env_path"
put 0600 "$work/token" "$token_path"

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
