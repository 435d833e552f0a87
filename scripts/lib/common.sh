# Shared by scripts/test, scripts/demo and scripts/bench: machine packages and venvs.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENVS="${ROARK_VENVS:-$ROOT/.venvs}"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

# ensure_debs PKG... : installs the Debian packages that are missing (apt, non-interactive).
ensure_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv NAME REQUIREMENT... : a venv under $VENVS with the project (editable) and the
# given requirements; rebuilt only when what it was made from changes.
ensure_venv() {
  local name="$1"; shift
  local dir="$VENVS/$name" stamp
  # What the venv is made from: its requirements, the Python, and this project's
  # pyproject.toml when the project is installed in it.
  local project=/dev/null
  case " $* " in *" -e "*) project="$ROOT/pyproject.toml" ;; esac
  stamp="$( (cat "$project"; printf '%s\n' "$@"; "$PYTHON" --version) | sha256sum | cut -c1-16)"
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    echo "$dir"; return 0
  fi
  log "creating venv $name: $*"
  rm -rf "$dir"
  # Each step checks its own status: a command substitution does not inherit `set -e`, and
  # a venv whose install failed must not be stamped as good.
  "$PYTHON" -m venv "$dir" || return 1
  "$dir/bin/pip" install -q --upgrade pip >&2 || return 1
  "$dir/bin/pip" install -q "$@" >&2 || return 1
  echo "$stamp" > "$dir/.stamp"
  echo "$dir"
}
