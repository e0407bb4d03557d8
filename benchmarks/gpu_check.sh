#!/usr/bin/env bash
# One prepared check of ddvideo on a machine with an NVIDIA GPU; about 8 minutes, and it writes
# benchmarks/results-<gpu>.md (e.g. results-nvidia-h200.md). Commit that file.
#
#   benchmarks/gpu_check.sh                  # everything, on GPU 0
#   benchmarks/gpu_check.sh --steps bench    # some steps only: tests,bench,batch,resume
#   benchmarks/gpu_check.sh --dry-run        # print the steps and their time limits; run nothing
#   benchmarks/gpu_check.sh --cpu            # the same steps on the CPU with tiny settings: checks this script
#   benchmarks/gpu_check.sh --out FILE       # write the results there instead
#
# Steps, each under its own time limit so that the whole stays within 8 minutes:
#   install  pip install -e ".[gpu,test]", only if TensorFlow does not see the GPU yet
#   tests    the GPU-relevant tests (parity, precision, XLA, tracing, resume) with the GPU visible
#   bench    bench.py sections frame (540x360 and 1920x1080), speed and reference: each precision, XLA on and off
#   batch    a two-job batch pinned to GPU 0 (the second job reuses the first one's network)
#   resume   a video render killed half-way and resumed, compared frame by frame with an uninterrupted render;
#            where they differ, again with TF_DETERMINISTIC_OPS=1 (deterministic cuDNN kernels)
# A step that fails or runs out of time is reported in the results and the next step runs.
# Exit status: 0 the check ran (see the results for each step), 2 bad option, 3 no NVIDIA GPU, 4 TensorFlow
# cannot use the GPU, or is not installed and the package index is out of reach.

set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

MODE=gpu DRY=0 STEPS=tests,bench,batch,resume OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) MODE=cpu ;;
        --dry-run) DRY=1 ;;
        --steps) STEPS=${2:-}; shift ;;
        --steps=*) STEPS=${1#--steps=} ;;
        --out) OUT=${2:-}; shift ;;
        --out=*) OUT=${1#--out=} ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for step in ${STEPS//,/ }; do
    case "$step" in tests|bench|batch|resume) ;; *) echo "gpu_check.sh: unknown step $step: choose from tests,bench,batch,resume" >&2; exit 2 ;; esac
done

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# -- the machine ----------------------------------------------------------------------------------------------
if [ "$MODE" = gpu ]; then
    GPU_LINE=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader -i 0 2>/dev/null | head -1)
    if [ -z "$GPU_LINE" ] && [ "$DRY" = 1 ]; then
        GPU_LINE="none found (a real run stops here with exit status 3)"
    elif [ -z "$GPU_LINE" ]; then
        echo "gpu_check.sh: no NVIDIA GPU here (nvidia-smi is missing or lists none): nothing to check; run benchmarks/bench.py for CPU figures, or --cpu to try this script" >&2
        exit 3
    fi
    GPU_NAME=${GPU_LINE%%,*}
    SLUG=$(echo "$GPU_NAME" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
    [ "$DRY" = 1 ] && [[ "$GPU_LINE" == "none found"* ]] && SLUG="<gpu>"
    export CUDA_VISIBLE_DEVICES=0
    DEVICE=gpu
else
    GPU_LINE="none (--cpu: the steps with tiny settings, to check the script)"
    SLUG=cpu-check
    export CUDA_VISIBLE_DEVICES=""
    DEVICE=cpu
fi
RESULTS=${OUT:-}
if [ -z "$RESULTS" ]; then
    if [ "$MODE" = gpu ]; then RESULTS=benchmarks/results-$SLUG.md; else RESULTS=${TMPDIR:-/tmp}/ddvideo-gpu-check-cpu.md; fi
fi

# time limits in seconds (GPU); the CPU mode runs smaller work under the same limits
declare -A LIMIT=([install]=120 [tests]=70 [bench]=240 [batch]=60 [resume]=90)

if [ "$DRY" = 1 ]; then
    echo "device: $GPU_LINE"
    echo "results: $RESULTS"
    echo "python: $PY"
    [ "$MODE" = gpu ] && echo "install: ${LIMIT[install]} s, only if TensorFlow does not see the GPU"
    for step in ${STEPS//,/ }; do echo "$step: ${LIMIT[$step]} s"; done
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ddvideo-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
REPORT=$WORK/report.md
: > "$REPORT"
note() { printf '%s\n' "$*" >> "$REPORT"; }
began=$(date +%s)

# run STEP COMMAND...: under the step's time limit, output to $WORK/STEP.log; one line in the report. COMMAND may
# be one of this script's functions: it then runs in a bash that is given them and the variables they use.
run() {
    local step=$1; shift
    local tick=$(date +%s) status command=("$@")
    if declare -F "$1" > /dev/null; then
        command=(bash -c "$(declare -p PY WORK FRAMES DREAM); $(declare -f killed_render same_frames resume_check); \"\$@\"" run "$@")
    fi
    timeout --signal=TERM --kill-after=10 "${LIMIT[$step]}" "${command[@]}" > "$WORK/$step.log" 2>&1
    status=$?
    local took=$(( $(date +%s) - tick ))
    case $status in
        0) note "- **$step**: ok in ${took} s" ;;
        124|137) note "- **$step**: TIMED OUT after ${took} s (limit ${LIMIT[$step]} s)" ;;
        *) note "- **$step**: FAILED (exit $status) after ${took} s" ;;
    esac
    echo "gpu_check.sh: $step: exit $status after ${took} s" >&2
    return $status
}

# the last lines of a step's log, as a quoted block in the report
tail_log() {
    note ""
    note '```'
    grep -v -e '^I0000' -e '^W0000' -e '^WARNING: All log' "$WORK/$1.log" | tail -n "${2:-15}" >> "$REPORT"
    note '```'
    note ""
}

sees_gpu() {
    "$PY" -c 'import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices("GPU") else 1)' > /dev/null 2>&1
}

# -- install ------------------------------------------------------------------------------------------------
# A machine with no TensorFlow and no way to the package index cannot install it: say so at once rather than spend
# the install step's limit on pip's retries (benchmarks/README.md: what such a machine needs brought to it).
has_tf() { "$PY" -c 'import tensorflow' > /dev/null 2>&1; }
reaches_index() { timeout 30 "$PY" -m pip index versions tensorflow --timeout 10 --retries 0 > /dev/null 2>&1; }
if [ "$MODE" = gpu ] && ! has_tf && ! reaches_index; then
    echo "gpu_check.sh: TensorFlow is not installed for $PY and the package index cannot be reached from here, so it cannot be installed: run this on a machine with tensorflow[and-cuda] installed (pip install -e '.[gpu,test]' where the index is reachable), or give PYTHON=a python that has it" >&2
    exit 4
fi
if [ "$MODE" = gpu ] && ! sees_gpu; then
    echo "gpu_check.sh: TensorFlow does not see the GPU: pip install -e '.[gpu,test]'" >&2
    run install "$PY" -m pip install -q -e ".[gpu,test]"
    tail_log install 5
    if ! sees_gpu; then
        echo "gpu_check.sh: TensorFlow still sees no GPU after the install (see $WORK/install.log); install TensorFlow with CUDA: pip install -e '.[gpu]'" >&2
        cat "$WORK/install.log" >&2
        exit 4
    fi
fi
TF_LINE=$("$PY" -c 'import tensorflow as tf, keras; print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")' 2>/dev/null)

# -- tests ----------------------------------------------------------------------------------------------------
want() { [[ ",$STEPS," == *",$1,"* ]]; }
if want tests; then
    if [ "$MODE" = gpu ]; then
        files=(tests/test_dream.py tests/test_reuse.py tests/test_video.py)
        pick="parity or precision or xla or jit or traced or compiles or depend or shared or worker or resumes"
    else
        files=(tests/test_dream.py)
        pick="traced_once or jit_defaults"
    fi
    run tests "$PY" -m pytest -q -p no:cacheprovider "${files[@]}" -k "$pick"
    tail_log tests 12
fi

# -- bench.py ---------------------------------------------------------------------------------------------------
BENCH_OUT=$WORK/bench.md
if want bench; then
    if [ "$MODE" = gpu ]; then
        run bench "$PY" benchmarks/bench.py --device gpu --quick --sections frame,speed,reference --machine "$SLUG" --out "$BENCH_OUT"
    else
        run bench "$PY" benchmarks/bench.py --device cpu --quick --sections frame --machine "$SLUG" --out "$BENCH_OUT"
    fi
    [ -s "$BENCH_OUT" ] || tail_log bench 20
fi

# a short clip (ffmpeg's test pattern) for the batch and resume steps
if [ "$MODE" = gpu ]; then SIZE=540x360 FRAMES=48 DREAM=(--weights none); else SIZE=160x120 FRAMES=16 DREAM=(--weights none --layers mixed2=1.0,mixed3=2.0 --octaves 1 --iterations 1); fi
FFMPEG=$("$PY" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
"$FFMPEG" -v error -y -f lavfi -i "testsrc2=size=$SIZE:rate=24" -frames:v "$FRAMES" -pix_fmt yuv420p "$WORK/clip.mp4"

# -- batch --------------------------------------------------------------------------------------------------------
if want batch; then
    {
        echo '[defaults]'
        echo 'mode = "video"'
        printf 'weights = "none"\n'
        [ "$MODE" = cpu ] && printf 'layers = "mixed2=1.0,mixed3=2.0"\noctaves = 1\niterations = 1\n'
        printf '\n[[job]]\ninput = "clip.mp4"\noutput = "a.mp4"\n\n[[job]]\ninput = "clip.mp4"\noutput = "b.mp4"\nseed = 0\nstep = 8.0\n'
    } > "$WORK/jobs.toml"
    if [ "$MODE" = gpu ]; then gpus=0; else gpus=none; fi
    run batch "$PY" -m ddvideo.cli batch "$WORK/jobs.toml" --gpus "$gpus" -q
    tail_log batch 6
    [ -f "$WORK/jobs.summary.json" ] && note "Networks loaded per job: $("$PY" -c 'import json, sys; print(", ".join(str(j.get("loads")) for j in json.load(open(sys.argv[1]))["jobs"]))' "$WORK/jobs.summary.json") (0: the worker kept it from the job before)."
fi

# -- kill and resume ----------------------------------------------------------------------------------------------
# render CLIP to the PNG folder OUT, killed with SIGKILL once KILL_AT frames are finished; then run it again to the end
killed_render() {
    local out=$1 kill_at=$2
    "$PY" -m ddvideo.cli video "$WORK/clip.mp4" "$out/" "${DREAM[@]}" -q &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(ls "$out.ddwork/frames" 2>/dev/null | grep -c '^[0-9]*\.png$')" -ge "$kill_at" ]; then
            kill -9 "$pid"
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null
    echo "killed after $(ls "$out.ddwork/frames" 2>/dev/null | grep -c '^[0-9]*\.png$') finished frames"
    "$PY" -m ddvideo.cli video "$WORK/clip.mp4" "$out/" "${DREAM[@]}" -q
}

# compare the PNG folders A and B file by file; prints "N of M frames identical"
same_frames() {
    local same=0 total=0
    for f in "$1"/*.png; do
        total=$((total + 1))
        cmp -s "$f" "$2/$(basename "$f")" && same=$((same + 1))
    done
    echo "$same of $total frames identical"
    [ "$same" -eq "$total" ] && [ "$total" -eq "$FRAMES" ]
}

resume_check() {
    local tag=$1
    "$PY" -m ddvideo.cli video "$WORK/clip.mp4" "$WORK/whole-$tag/" "${DREAM[@]}" -q || return 1
    killed_render "$WORK/resumed-$tag" $((FRAMES / 2)) || return 1
    same_frames "$WORK/whole-$tag" "$WORK/resumed-$tag"
}

if want resume; then
    if run resume resume_check plain; then
        note "  Resumed render equals the uninterrupted one ($(grep -m1 'killed after' "$WORK/resume.log")): $(tail -1 "$WORK/resume.log")."
    else
        note "  $(grep -m1 'killed after' "$WORK/resume.log"); $(tail -1 "$WORK/resume.log"); again with TF_DETERMINISTIC_OPS=1:"
        cp "$WORK/resume.log" "$WORK/resume-plain.log"
        export TF_DETERMINISTIC_OPS=1
        if run resume resume_check deterministic; then
            note "  with op determinism: $(tail -1 "$WORK/resume.log")."
        else
            note "  with op determinism too: $(tail -1 "$WORK/resume.log")."
            tail_log resume 8
        fi
    fi
fi

# -- the results file ---------------------------------------------------------------------------------------------
took=$(( $(date +%s) - began ))
{
    if [ -s "$BENCH_OUT" ]; then
        sed -n "1,/^## Notes/p" "$BENCH_OUT" | grep -v '^## Notes'
    else
        echo "# ddvideo on $SLUG"
        echo
    fi
    echo
    echo "## GPU check (benchmarks/gpu_check.sh)"
    echo
    echo "Device: $GPU_LINE. $TF_LINE. Ran in $took s on $(date -u +%Y-%m-%d); steps: $STEPS."
    echo
    cat "$REPORT"
    if [ -f "$RESULTS" ] && grep -q '^## Notes' "$RESULTS"; then
        echo
        sed -n '/^## Notes/,$p' "$RESULTS"
    fi
} > "$WORK/results.md"
mkdir -p "$(dirname "$RESULTS")"
cp "$WORK/results.md" "$RESULTS"
echo "gpu_check.sh: results in $RESULTS ($took s)" >&2
exit 0
