#!/usr/bin/env bash
# Animate every face image in a folder with one driving clip, three ways.
#
#   examples/batch.sh [FACES_DIR] [DRIVING] [OUT_DIR] [animate options...]
#   examples/batch.sh faces clip.mp4 out --checkpoint vox.pth.tar --config vox-256
#
# 1. A shell loop over `animate run`: one process (and one model load) per image, the exit code of each checked.
# 2. `animate batch --sources GLOB`: one process, one model load, a summary at the end.
# 3. `animate batch MANIFEST`: the same from a CSV file, where each row may also set its own options.
# Exit codes: 0 done, 1 a job failed, 2 bad input or usage, 130 Ctrl-C, 143 SIGTERM.

faces=${1:-faces}
driving=${2:-clip.mp4}
out=${3:-out}
shift $(($# < 3 ? $# : 3))
options=("$@")  # passed to every animate command: --checkpoint, --device, ...
mkdir -p "$out/loop" "$out/glob" "$out/manifest"

# --- 1. the shell loop ------------------------------------------------------------------------------------------
failed=0
for face in "$faces"/*.png "$faces"/*.jpg; do
    [ -e "$face" ] || continue  # a pattern that matched nothing stays as written
    name=$(basename "${face%.*}")
    [ -e "$out/loop/$name.mp4" ] && continue  # done by an earlier, interrupted run: outputs are never partial
    animate run "$face" "$driving" -o "$out/loop/$name.mp4" --quiet "${options[@]}"
    status=$?
    case $status in
        0) ;;
        130 | 143) echo "stopped at $face" >&2; exit "$status" ;;  # Ctrl-C or SIGTERM: stop the loop as well
        *) echo "failed: $face (exit $status)" >&2; failed=$((failed + 1)) ;;
    esac
done
echo "loop: $failed failed" >&2

# --- 2. one batch over a glob (quoted: animate expands it, so a thousand names never hit the shell's limit) ----
animate batch --sources "$faces/*.png" --sources "$faces/*.jpg" --driving "$driving" -o "$out/glob/" \
    --skip-existing --json "${options[@]}" >"$out/glob/report.jsonl"
echo "glob batch: exit $?" >&2

# --- 3. one batch from a manifest ------------------------------------------------------------------------------
# Relative paths in a manifest are relative to its folder: the outputs land beside it. The second column could
# name a different clip per row, and optional columns (fit, relative, no_audio, ...) set per-job options.
manifest="$out/manifest/jobs.csv"
{
    echo "source,driving,output,fit"
    for face in "$faces"/*.png "$faces"/*.jpg; do
        [ -e "$face" ] || continue
        echo "\"$(realpath "$face")\",\"$(realpath "$driving")\",$(basename "${face%.*}").mp4,pad"
    done
} >"$manifest"
animate batch "$manifest" --skip-existing --json "${options[@]}" >"$out/manifest/report.jsonl"
status=$?
echo "manifest batch: exit $status" >&2
# each report line: {"job": 1, "source": ..., "output": ..., "status": "ok" | "failed" | "skipped", "error": ...}
exit $status
