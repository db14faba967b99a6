#!/usr/bin/env bash
# `make demo`: the ten-pipeline app factory in a throwaway repository, run to completion.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="${1:-$(mktemp -d "${TMPDIR:-/tmp}/freq-app-factory.XXXXXX")}"
mkdir -p "$repo" && cd "$repo"
git init -q -b main
cp -r "$here/.frequency" .
cp "$here/stand-in-agent" .
echo "out/" >> .git/info/exclude  # what the stand-in agent writes stays out of git status
git add -A
git -c user.name=demo -c user.email=demo@example.com commit -q -m "app factory"
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
