#!/usr/bin/env bash
# lint:no-sleep-loops — product code waits on conditions, never sleeps to poll.
#
# Usage: no_sleep_loops.sh SOURCE_DIR
#
# Scope: every C/C++ source (.cc .cpp .cxx .c .h .hh .hpp) of the project except tests/,
# fuzz/ and tools/ (the simarrayctl CLI, whose `watch` interval is a deliberate sleep, and
# tools/bench). That is the daemon and the libraries it is built from: base, cache,
# mirror, adaptors, daemon. In a git checkout the files are those git tracks or would
# track (untracked, not ignored), so build directories are skipped; elsewhere every file
# below SOURCE_DIR outside build*/ and .git/.
#
# Any call below is flagged, in a loop or not (a one-off sleep is a poll or a race patch
# in disguise), and so is a comment naming one: wait on an absl::CondVar, a
# Mutex::Await(WithDeadline) or an EventCount (simarray/base/event_count.h) that is
# notified where the state changes, with a deadline for the next thing due.
set -euo pipefail

src=${1:?usage: no_sleep_loops.sh SOURCE_DIR}
cd "$src"

pattern='SleepFor|sleep_for|sleep_until|usleep|nanosleep|\bsleep[[:space:]]*\('

# Allowed lines, one entry each, with a comment saying why and until when:
#   'path:the line's text without leading/trailing blanks'
# An entry allows exactly one line with that text in that file, wherever it moves; an
# entry that matches nothing fails the lint, so it is deleted when its sleep goes.
# Empty: nothing in product code sleeps.
allowed=(
)

list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard
  else
    find . \( -path ./.git -o -path './build*' \) -prune -o -type f -print | sed 's|^\./||'
  fi | grep -vE '^(tests|fuzz|tools)/' | grep -E '\.(cc|cpp|cxx|c|h|hh|hpp)$' | sort -u
}

hits=$(list_files | while IFS= read -r f; do
  [ -f "$f" ] && grep -nHE "$pattern" -- "$f" || true
done)

declare -A used=()
failed=0
while IFS= read -r hit; do
  [ -n "$hit" ] || continue
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest%%:*}
  text=${rest#*:}
  text="${text#"${text%%[![:space:]]*}"}"
  text="${text%"${text##*[![:space:]]}"}"
  key="$file:$text"
  ok=0
  for entry in "${allowed[@]}"; do
    if [ "$entry" = "$key" ] && [ -z "${used[$entry]:-}" ]; then
      used[$entry]=1
      ok=1
      break
    fi
  done
  if [ $ok = 1 ]; then
    echo "allowed (allow-list): $file:$line: $text"
  else
    echo "$file:$line: sleep in product code: $text"
    failed=1
  fi
done <<<"$hits"

for entry in "${allowed[@]}"; do
  if [ -z "${used[$entry]:-}" ]; then
    echo "allow-list entry matches no line any more, delete it from $0: $entry"
    failed=1
  fi
done

if [ $failed = 1 ]; then
  echo "lint:no-sleep-loops FAILED (see above)"
  exit 1
fi
echo "lint:no-sleep-loops: no sleep in product code"
