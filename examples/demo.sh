#!/usr/bin/env bash
# `make demo`: a throwaway repository, two factories, a few subjects, run until idle.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(mktemp -d "${TMPDIR:-/tmp}/freq-demo.XXXXXX")"
cd "$repo"
git init -q -b main
git -c user.name=demo -c user.email=demo@example.com commit -q --allow-empty -m "demo repository"
mkdir .frequency
echo ".demo-out/" >> .git/info/exclude  # what the demo steps build, kept out of git status
cp "$here/demo/build.yaml" "$here/demo/deploy.yaml" .frequency/
git add .frequency && git -c user.name=demo -c user.email=demo@example.com commit -q -m "factories"
echo "== repository: $repo"
git freq validate
git freq add build app-1 app-2 app-3 app-4 app-5
git freq add deploy web api --data env=staging
echo "== git freq run --until-idle"
git freq run --until-idle
echo "== git freq status"
git freq status
echo "== git log refs/frequency/subjects/build/app-1"
git log --format='%h %s%n%(trailers:key=Freq-Step,key=Freq-From,key=Freq-To,key=Freq-Attempt,key=Freq-Duration-Ms,separator=%x2C )' refs/frequency/subjects/build/app-1
echo "== the working tree is untouched: git status --short"
git status --short
echo "== $(git log --oneline --glob=refs/frequency | wc -l) commits under refs/frequency"
