#!/usr/bin/env bash
# `make demo`: the ten-pipeline app factory in a throwaway repository, run to completion.
# Its agent steps run the stand-in CLIs of stand-ins/ (offline, deterministic); README.md
# says how to run the real Claude Code, Codex and Gemini CLI instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="${1:-$(mktemp -d "${TMPDIR:-/tmp}/freq-app-factory.XXXXXX")}"
mkdir -p "$repo" && cd "$repo"
git init -q -b main
git config user.name demo                 # who the agents' commits are by
git config user.email demo@example.com
cp -r "$here/.frequency" .
cp -r "$here/stand-ins" .
cp "$here/stand-in-agent" .
# what the shell steps write stays out of git; the agents' work lands on main
printf 'out/\n' >> .git/info/exclude
printf '# Apps\n' > APPS.md
git add -A
git commit -q -m "app factory"
echo "== repository: $repo"
git freq validate
git freq add ideas idea-1 idea-2 idea-3
echo "== git freq run --until-idle"
start=$(date +%s)
git freq run --until-idle
echo "== finished in $(( $(date +%s) - start ))s"
echo "== git freq status"
git freq status
echo "== git freq dlq list"
git freq dlq list
echo "== $(git log --oneline --glob=refs/frequency | wc -l) commits: git log --oneline --glob=refs/frequency"
echo "== what landed on main through the merge queue: git log --oneline main"
git log --oneline -n 12 main
echo "   ... $(git rev-list --count main) commits in all"
echo "== the merge queue's history: git log --oneline refs/frequency/queue/main"
git log -n 12 --format='%h %s' refs/frequency/queue/main
echo "   ... $(git rev-list --count refs/frequency/queue/main) events in all;" \
  "$(git log --format=%s --grep='turned away' refs/frequency/queue/main | wc -l) turned away"
echo "== APPS.md on main, which every implement edits (the conflicts above were on it)"
git show main:APPS.md | sed 's/^/   /'
echo "== the worktree pool: git worktree list"
git worktree list | sed 's/^/   /'
attempt() {  # the last attempt commit of an agent on build/app-1
  git log -1 --format=%B --grep="^Freq-Agent: $1\$" refs/frequency/subjects/build/app-1
}
echo "== an implement attempt (Claude Code stand-in: the CLI reports its cost)"
echo "   git log -1 --format=%B --grep='^Freq-Agent: implementer\$' refs/frequency/subjects/build/app-1"
attempt implementer | sed 's/^/   /'
echo "== a review attempt (Codex stand-in: tokens only, the cost estimated from prices:)"
attempt reviewer | sed 's/^/   /'
if git freq costs --help >/dev/null 2>&1; then
  echo "== git freq costs"
  git freq costs
fi
