# Shared by scripts/keystone.sh, scripts/tempest.sh and bench/glance-server.sh: a venv of its own per
# PyPI server or suite (their pins never meet the client versions in .venv), refreshed only when its
# requirements file changes (a sha256 stamp inside the venv).
# shellcheck source=deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

# venv_python: prints a Python 3 that can make venvs with pip ($PYTHON, python3 or /usr/bin/python3);
# installs python3-venv when none can (Debian's python3 leaves venv's ensurepip out).
venv_python() {
    local cand
    for cand in "${PYTHON:-}" python3 /usr/bin/python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            echo "$cand"
            return 0
        fi
    done
    ensure_debian_packages python3-venv </dev/null >&2 || return 1
    echo /usr/bin/python3
}

# ensure_venv NAME VENV REQ CHECK LIST_REGEX [EXECUTABLE...]: VENV with REQ pip-installed, unless it is
# up to date: every EXECUTABLE in VENV/bin, VENV/.NAME-requirements.sha256 holds REQ's sha256 and
# `python -c CHECK` succeeds. After a refresh, prints the `pip list` lines matching LIST_REGEX.
# VENV_BEFORE_BUILD=FUNCTION: called with the chosen python before pip runs (e.g. build dependencies).
ensure_venv() {
    local name=$1 venv=$2 req=$3 check=$4 list_regex=$5; shift 5
    local stamp=$venv/.$name-requirements.sha256 py want exe current=1
    py=$(venv_python) || return 1
    want=$(sha256sum "$req" | cut -d' ' -f1)
    for exe in "$@"; do [ -x "$venv/bin/$exe" ] || current=0; done
    if [ "$current" = 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] \
       && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "$name venv $venv is up to date"
        return 0
    fi
    if [ -n "${VENV_BEFORE_BUILD:-}" ]; then "$VENV_BEFORE_BUILD" "$py"; fi
    echo "creating/refreshing $name venv $venv with $py ($("$py" --version 2>&1))"
    # A venv whose interpreter still runs is refreshed in place; a broken one is made anew.
    if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        "$py" -m venv --clear "$venv"
    fi
    "$venv/bin/python" -m pip install -q -r "$req" </dev/null
    echo "$want" > "$stamp"
    "$venv/bin/python" -m pip list 2>/dev/null | grep -iE "$list_regex"
}
