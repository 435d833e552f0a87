# Named steps for scripts/test: each runs to the end whatever the others did, and the
# summary says which passed, how long each took, and the total. Sourced, not run.

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
STEPS_STARTED=$SECONDS

# step NAME COMMAND... : runs the command, records passed/failed and its time.
step() {
  local name="$1"; shift
  local started=$SECONDS rc=0
  log "$name"
  "$@" || rc=$?
  STEP_NAMES+=("$name")
  STEP_SECONDS+=($((SECONDS - started)))
  if [ "$rc" = 0 ]; then STEP_RESULTS+=(passed); else STEP_RESULTS+=("failed (exit $rc)"); fi
}

# step_start NAME COMMAND... : a step run in the background, its output kept aside;
# step_finish collects it (output, result, time) in the order the steps were started.
BACKGROUND=()
step_start() {
  local name="$1"; shift
  local out
  out="$(mktemp -d)"
  log "$name (started; its output follows when it ends)"
  (
    started=$(date +%s)
    rc=0
    "$@" >"$out/output" 2>&1 || rc=$?
    echo "$rc $(($(date +%s) - started))" >"$out/result"
  ) &
  BACKGROUND+=("$!|$name|$out")
}

step_finish() {
  local entry pid name out rc seconds
  for entry in "${BACKGROUND[@]}"; do
    IFS='|' read -r pid name out <<<"$entry"
    wait "$pid"
    log "$name"
    cat "$out/output" >&2
    read -r rc seconds <"$out/result"
    rm -rf "$out"
    STEP_NAMES+=("$name")
    STEP_SECONDS+=("$seconds")
    if [ "$rc" = 0 ]; then STEP_RESULTS+=(passed); else STEP_RESULTS+=("failed (exit $rc)"); fi
  done
  BACKGROUND=()
}

# summary: one line per step, the total time; returns 1 if any step failed.
summary() {
  local i failed=0
  printf '\n%-48s %-16s %8s\n' "line" "result" "time" >&2
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-48s %-16s %7ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}" >&2
    [ "${STEP_RESULTS[$i]}" = passed ] || failed=$((failed + 1))
  done
  local total=$((SECONDS - STEPS_STARTED))
  printf '%-48s %-16s %7ss\n' "total" "" "$total" >&2
  if [ "$failed" = 0 ]; then
    log "all ${#STEP_NAMES[@]} lines passed in $((total / 60)) min $((total % 60)) s"
    return 0
  fi
  log "$failed of ${#STEP_NAMES[@]} lines failed"
  return 1
}

# pipecat_version VENV : the Pipecat version installed in a venv.
pipecat_version() {
  "$1/bin/python" -c 'import importlib.metadata as m; print(m.version("pipecat-ai"))'
}

# tree_state : the checkout's status (tracked changes and new files), to compare after a run.
tree_state() {
  if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" status --porcelain --untracked-files=all
  else
    echo "not a git checkout"
  fi
}

# tree_unchanged BEFORE : fails, naming the files, if the run changed the checkout.
tree_unchanged() {
  local after
  after="$(tree_state)"
  [ "$after" = "$1" ] && return 0
  log "the run changed the checkout (git status --porcelain before and after):"
  diff <(printf '%s\n' "$1") <(printf '%s\n' "$after") >&2
  return 1
}
