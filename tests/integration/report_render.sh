#!/usr/bin/env bash
# The page of llmsim report in a real browser: headless Chromium loads
# index.html from the file system, its DOM has every plot as an <img> of an
# SVG of the report, and a screenshot of it is a PNG with something drawn.
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

job=(--model opt-125m --hardware cpu-only --prompt-len 8 --gen-len 4 --db "$db")
sim=$("$L" simulate "${job[@]}" --format json | run_id)
meas=$("$L" run "${job[@]}" --synthetic 1 --format json | run_id)
"$L" report "$sim" "$meas" -o "$tmp/rep" --db "$db" >/dev/null 2>&1; rc=$?
check "report exits 0" '[ $rc -eq 0 ] && [ -s "$tmp/rep/index.html" ]'

chrome --screenshot="$tmp/shot.png" --window-size=1200,2000 "file://$tmp/rep/index.html" >/dev/null
size=$(wc -c < "$tmp/shot.png" 2>/dev/null || echo 0)
check "the screenshot is a PNG" '[ "$(head -c 8 "$tmp/shot.png" | od -An -tx1 | tr -d " \n")" = 89504e470d0a1a0a ]'
check "the screenshot has something drawn ($size bytes)" '[ "$size" -gt $MIN_SHOT_BYTES ]'

chrome --dump-dom "file://$tmp/rep/index.html" > "$tmp/dom.html"
nimg=$(grep -o '<img [^>]*src="[^"]*\.svg"' "$tmp/dom.html" | wc -l)
nsvg=$(ls "$tmp/rep"/*.svg | wc -l)
check "the DOM has one <img> per SVG ($nimg of $nsvg)" '[ "$nsvg" -gt 0 ] && [ "$nimg" -eq "$nsvg" ]'
missing=0
for f in "$tmp/rep"/*.svg; do
  grep -qF "src=\"${f##*/}\"" "$tmp/dom.html" || missing=$((missing + 1))
done
check "every SVG of the report is an <img> in the DOM" '[ $missing -eq 0 ]'
check "the DOM has the title and a table of numbers" \
      'grep -q "<h1>llmsim report</h1>" "$tmp/dom.html" && grep -q "<table>" "$tmp/dom.html"'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
