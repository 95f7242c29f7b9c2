#!/usr/bin/env bash
# Install the system packages the project needs on Debian bookworm (run as root, or with sudo).
# Only what is missing is installed, so it is quick and safe to run again.
#   java (OpenJDK 17)   Kafka broker, run from jars that Maven resolves (deploy/local/stack.py)
#   mvn                 resolves those Kafka jars from Maven Central
#   clickhouse-server   analytics store (Debian ships 18.16); clickhouse-client for humans
#   prometheus          metrics and alerts; also provides promtool for the rule unit tests
#   prometheus-alertmanager  amtool, which checks deploy/alertmanager/alertmanager.yml (the
#                       tests); its packaged service is neither started nor left enabled
#   postgresql-15       transactional state (Debian's server; run by the stack as a plain process)
#   go                  fetches the Compose Specification schema (`make schemas`)
#   npm                 installs buf, the protobuf linter, and axe-core (`make tools`)
#   chromium            the browser the dashboard's browser tests drive (Playwright)
#   python3 venv        the project's virtualenv
set -euo pipefail

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "run as root (or install sudo)" >&2; exit 1; }
  SUDO=(sudo)
fi

have() {
  # Debian installs the servers in /usr/sbin, which a non-root PATH may lack.
  command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 ]]
}

missing=()
have java || missing+=(openjdk-17-jre-headless)
have mvn || missing+=(maven)
have clickhouse-server || missing+=(clickhouse-server)
have clickhouse-client || missing+=(clickhouse-client)
{ have prometheus && have promtool; } || missing+=(prometheus)
have amtool || missing+=(prometheus-alertmanager)
# The server binaries live in a per-version folder, never on PATH.
[[ -x /usr/lib/postgresql/15/bin/postgres && -x /usr/lib/postgresql/15/bin/initdb ]] \
  || missing+=(postgresql-15)
have go || missing+=(golang-go)
have npm || missing+=(npm)
have chromium || missing+=(chromium)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

# The gRPC services listen on fixed ports 50051-50055 (the tests' own up to 50099; the soak's,
# shifted by its offset of 10,000, 60051-60099), inside Linux's default ephemeral range
# (32768-60999): any process's outgoing connection can take one of them for a while, and a
# service started then fails ("Failed to bind to address"; CI runs lost the demo's and the soak's
# complaints and surveys servers that way). Reserved for listeners (until reboot; add
# net.ipv4.ip_local_reserved_ports to /etc/sysctl.d to keep it).
reserved_file=/proc/sys/net/ipv4/ip_local_reserved_ports
for platform_ports in 50051-50099 60051-60099; do
  reserved=$(cat "$reserved_file" 2>/dev/null || true)
  if [[ -e $reserved_file && ",$reserved," != *",$platform_ports,"* ]]; then
    if echo "${reserved:+$reserved,}$platform_ports" | "${SUDO[@]}" tee "$reserved_file" >/dev/null; then
      echo "install_system: ports $platform_ports reserved from the ephemeral range"
    else
      echo "install_system: warning: could not reserve ports $platform_ports" >&2
    fi
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_system: all system packages present"
  exit 0
fi

echo "install_system: installing ${missing[*]}"
# The stack runs these servers itself on loopback; a packaged service started by the install
# (e.g. postgresql-15's "main" cluster on 5432) would take their ports. policy-rc.d exit 101 tells invoke-rc.d/deb-systemd-invoke not to start
# anything during this install (only if no policy exists already).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 0755 "$policy"
  trap '"${SUDO[@]}" rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Of prometheus-alertmanager only amtool is used (the tests check deploy/alertmanager/ with it):
# its daemon would listen on :9093, the local Kafka controller's port, so it is not left enabled
# to start at boot either.
if [[ " ${missing[*]} " == *" prometheus-alertmanager "* ]]; then
  if [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now prometheus-alertmanager.service || true
  elif command -v systemctl >/dev/null; then
    "${SUDO[@]}" systemctl disable prometheus-alertmanager.service || true  # offline: the links
  fi
  if [[ -x /etc/init.d/prometheus-alertmanager ]] && command -v update-rc.d >/dev/null; then
    "${SUDO[@]}" update-rc.d prometheus-alertmanager disable >/dev/null 2>&1 || true
  fi
fi
echo "install_system: done"
