#!/usr/bin/env bash
# Label a folder tree and use dymn-tag in shell pipelines.
# Uses the published dymn10_as model (downloaded once into the cache); set WEIGHTS=path/to/file.pt
# to use a local checkpoint instead.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
weights=(${WEIGHTS:+--weights "$WEIGHTS"})
out="$(mktemp -d)"

# A whole folder tree to CSV, one row per (file, label).
dymn-tag "$here/audio" -o "$out/labels.csv" --top 5 "${weights[@]}"
head -n 6 "$out/labels.csv"

# Audio on stdin, JSON Lines on stdout: the best label of each 2 s window with 1 s hop.
cat "$here/audio/chimes_and_noise.wav" | dymn-tag - --window 2 --hop 1 --top 1 "${weights[@]}" -q \
    | python3 -c 'import json, sys; r = json.loads(sys.stdin.readline()); print(r["path"], r["n_windows"], r["labels"][0]["label"])'

# A list of files on stdin (for example from find), JSON Lines kept in a file.
find "$here/audio" -name '*.wav' | dymn-tag --files-from - --top 3 -q "${weights[@]}" > "$out/labels.jsonl"
wc -l < "$out/labels.jsonl"
rm -r "$out"
