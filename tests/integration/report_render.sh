#!/usr/bin/env bash
# The page of llmsim report in a real browser: headless Chromium loads
# index.html from the file system, its DOM has every plot as an <img> of an
# SVG of the report, and a screenshot of it is a PNG with something drawn;
# for a report of offline runs and one of a serving validation.
# Skips (77) where gnuplot or Chromium is not installed. Chromium in a VM
# prints D-Bus errors on stderr; they are ignored.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
if ! command -v gnuplot >/dev/null; then
  echo "skip: gnuplot is not installed (apt-get install gnuplot-nox)"
  exit 77
fi
browser=""
for b in chromium chromium-browser google-chrome; do
  command -v "$b" >/dev/null && { browser=$b; break; }
done
if [ -z "$browser" ]; then
  echo "skip: chromium is not installed (apt-get install chromium)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
run_id() { sed -n 's/.*"run_id":[[:space:]]*\([0-9]*\).*/\1/p' | head -1; }
# A blank 1200x2000 page compresses to a few KB; one with plots to far more.
MIN_SHOT_BYTES=20000
chrome() {
  HOME=$tmp timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$tmp/profile" "$@" 2>>"$tmp/browser.log"
}

# The page of a report in the browser: a screenshot with something drawn,
# and every SVG of the report an <img> of the DOM.
render_checks() {
  local dir=$1 what=$2 shot=$tmp/$2.png dom=$tmp/$2.html f
  chrome --screenshot="$shot" --window-size=1200,2000 "file://$dir/index.html" >/dev/null
  size=$(wc -c < "$shot" 2>/dev/null || echo 0)
  check "$what: the screenshot is a PNG" '[ "$(head -c 8 "$shot" | od -An -tx1 | tr -d " \n")" = 89504e470d0a1a0a ]'
  check "$what: the screenshot has something drawn ($size bytes)" '[ "$size" -gt $MIN_SHOT_BYTES ]'
  chrome --dump-dom "file://$dir/index.html" > "$dom"
  nimg=$(grep -o '<img [^>]*src="[^"]*\.svg"' "$dom" | wc -l)
  nsvg=$(ls "$dir"/*.svg | wc -l)
  check "$what: the DOM has one <img> per SVG ($nimg of $nsvg)" '[ "$nsvg" -gt 0 ] && [ "$nimg" -eq "$nsvg" ]'
  missing=0
  for f in "$dir"/*.svg; do
    grep -qF "src=\"${f##*/}\"" "$dom" || missing=$((missing + 1))
  done
  check "$what: every SVG of the report is an <img> in the DOM" '[ $missing -eq 0 ]'
  check "$what: the DOM has the title and a table of numbers" \
        'grep -q "<h1>llmsim report</h1>" "$dom" && grep -q "<table>" "$dom"'
}

job=(--model opt-125m --hardware cpu-only --prompt-len 8 --gen-len 4 --db "$db")
sim=$("$L" simulate "${job[@]}" --format json | run_id)
meas=$("$L" run "${job[@]}" --synthetic 1 --format json | run_id)
"$L" report "$sim" "$meas" -o "$tmp/rep" --db "$db" >/dev/null 2>&1; rc=$?
check "report exits 0" '[ $rc -eq 0 ] && [ -s "$tmp/rep/index.html" ]'
render_checks "$tmp/rep" offline

# A serving validation: per preemption mode the latency CDFs, the KV blocks
# and the preemptions of its serve and serve-measure runs.
"$L" validate --serving --model opt-125m --hardware cpu-only --num-requests 8 --rate 50 \
     --prompt-len uniform:8,40 --output-len uniform:4,16 --kv-memory "4 MiB" --swap-space "16 MiB" \
     --max-batch 4 --token-budget 64 --db "$tmp/serve.db" >/dev/null 2>&1; rc=$?
"$L" report -o "$tmp/srv" --db "$tmp/serve.db" >/dev/null 2>&1; rc2=$?
check "serving report exits 0" '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ -s "$tmp/srv/ttft_1.svg" ]'
render_checks "$tmp/srv" serving
check "serving: the DOM has the latency CDFs and the KV blocks" \
      'grep -q "src=\"tpot_1.svg\"" "$tmp/serving.html" && grep -q "src=\"kv_1.svg\"" "$tmp/serving.html"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
