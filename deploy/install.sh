#!/usr/bin/env bash
# Install the resilience controller on a Debian-based gateway (ARM or x86), as root:
#
#   sudo deploy/install.sh [SITE_FILE]
#
# run from a checkout (or an unpacked release) of the project. It
#   1. installs the Debian packages it needs (python3, python3-venv),
#   2. creates the system user "resilience" (no login, no home) and adds it to
#      "dialout" so it can open RS-485 and serial adapters (/dev/ttyUSB*, /dev/ttyAMA*),
#   3. installs the package into the virtualenv /opt/resilience/venv,
#   4. puts the site file in /etc/resilience/site.toml (SITE_FILE, or the reference
#      site if none is there yet),
#   5. gives the API its TLS certificate: unless the site file names one, a self-signed
#      certificate for this gateway's names and addresses in /etc/resilience/tls (made by
#      `resilience tls-cert`, renewed when it nears its end or the addresses change),
#      added to the site file's [api]; prints its SHA-256 fingerprint, which a tablet's
#      browser shows and must match; then checks the site file,
#   6. makes /var/lib/resilience for the SQLite store; on the first install (no token
#      yet) makes an operator token "tablet" and prints its signed-in link and QR code,
#   7. installs and enables the systemd unit, and starts it.
#
# Running it again upgrades the software and keeps the site file and the data.
# Logs: journalctl -u resilience -f    Status: systemctl status resilience
set -euo pipefail

PREFIX=/opt/resilience
VENV="$PREFIX/venv"
CONFIG_DIR=/etc/resilience
DATA_DIR=/var/lib/resilience
UNIT=/etc/systemd/system/resilience.service
USER_NAME=resilience
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SITE_FILE="${1:-}"

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
[ -f "$SOURCE/pyproject.toml" ] || die "$SOURCE does not look like the resilience project"
command -v systemctl >/dev/null || die "systemd is required"
if [ -n "$SITE_FILE" ] && [ ! -f "$SITE_FILE" ]; then die "no site file $SITE_FILE"; fi

say "Debian packages"
missing=""
for package in python3 python3-venv; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
    || missing="$missing $package"
done
if [ -n "$missing" ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "python 3.11 or newer is required (found $(python3 --version))"

say "user $USER_NAME (groups: dialout)"
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir "$DATA_DIR" --shell /usr/sbin/nologin \
    --user-group "$USER_NAME"
fi
usermod -a -G dialout "$USER_NAME"

say "software into $VENV"
install -d -m 0755 "$PREFIX"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SOURCE"
install -m 0644 "$SOURCE/README.md" "$PREFIX/README.md"
rm -rf "$PREFIX/runbooks"
cp -r "$SOURCE/runbooks" "$PREFIX/runbooks"

say "site file in $CONFIG_DIR"
install -d -m 0750 -o root -g "$USER_NAME" "$CONFIG_DIR"
if [ -n "$SITE_FILE" ]; then
  install -m 0640 -o root -g "$USER_NAME" "$SITE_FILE" "$CONFIG_DIR/site.toml"
elif [ ! -f "$CONFIG_DIR/site.toml" ]; then
  sed 's|^store_path = .*|store_path = "/var/lib/resilience/site.sqlite"|' \
    "$SOURCE/config/site.toml" > "$CONFIG_DIR/site.toml"
  chown root:"$USER_NAME" "$CONFIG_DIR/site.toml"
  chmod 0640 "$CONFIG_DIR/site.toml"
  say "installed the reference site: edit $CONFIG_DIR/site.toml for this site"
fi

say "TLS certificate for the API"
addresses=()
for address in $(hostname -I 2>/dev/null || true); do addresses+=(--ip "$address"); done
host="$(hostname)"
"$VENV/bin/resilience" tls-cert --config "$CONFIG_DIR/site.toml" --dir "$CONFIG_DIR/tls" \
  --group "$USER_NAME" --name "$host" --name "$host.local" "${addresses[@]}"
"$VENV/bin/resilience" check-config "$CONFIG_DIR/site.toml"

say "data in $DATA_DIR"
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$DATA_DIR"
as_service() { (cd "$DATA_DIR" && runuser -u "$USER_NAME" -- "$VENV/bin/resilience" "$@"); }
if [ -z "$(as_service token list --config "$CONFIG_DIR/site.toml")" ]; then
  say "first token: operator \"tablet\" (shown once; resilience token --help for more)"
  lan_host="$(hostname -I 2>/dev/null | awk '{print $1}')"
  as_service token create --role operator --name tablet --link --lan-host "${lan_host:-$host.local}" \
    --config "$CONFIG_DIR/site.toml"
fi

say "systemd unit $UNIT"
install -m 0644 "$SOURCE/deploy/resilience.service" "$UNIT"
systemctl daemon-reload
systemctl enable resilience.service
systemctl restart resilience.service
say "done: systemctl status resilience; journalctl -u resilience -f"
