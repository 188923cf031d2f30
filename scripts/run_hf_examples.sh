#!/usr/bin/env bash
# Run transformers' official PyTorch example fine-tuning scripts, UNCHANGED, against a Miniformer
# checkpoint loaded with --trust_remote_code, in a Python process where `miniformer_hf` cannot be
# imported (so the checkpoint's own configuration_miniformer.py / modeling_miniformer.py must be
# enough, as they are for anyone who downloads the checkpoint).
#
# Usage:
#   scripts/run_hf_examples.sh EXAMPLES_DIR [WORK_DIR]
#
# EXAMPLES_DIR holds the example scripts, either flat (run_translation.py, run_summarization.py,
# run_glue.py, run_classification.py, run_clm.py) or as a transformers checkout
# (EXAMPLES_DIR/examples/pytorch/...). Get them with, e.g.
#   git clone --depth 1 --branch v5.24.0 https://github.com/huggingface/transformers /tmp/transformers
#   scripts/run_hf_examples.sh /tmp/transformers
# (the PyPI sdist of transformers does not contain examples/). Scripts that are missing are skipped.
#
# Needs, in the Python that runs them ($PYTHON, default .venv/bin/python): transformers, torch,
# datasets, accelerate, evaluate (pip install evaluate). The `miniformer` CLI (this package) is used
# only to train the small checkpoint and write the data files, never inside the example runs.
#
# Metrics: the scripts call evaluate.load("accuracy" | "sacrebleu" | "rouge"), which fetches metric
# code from the Hugging Face Hub. With USE_HUB_METRICS=0 (the default) the runs happen in a folder
# holding small local stand-ins (accuracy/accuracy.py, sacrebleu/sacrebleu.py, rouge/rouge.py), which
# evaluate.load picks up before going to the Hub, so everything works offline. Set USE_HUB_METRICS=1
# to use the real Hub metrics (needs network; rouge needs `rouge_score`, sacrebleu `sacrebleu`).
#
# Also needed: nltk (run_summarization.py imports it; offline, an empty punkt model is put in NLTK_DATA).
# Environment knobs: PYTHON, MINIFORMER (CLI), MAX_STEPS (5), SIZE (tiny), USE_HUB_METRICS (0),
# MAX_SOURCE_LENGTH (1024, the scripts' own default, for run_translation.py).
set -euo pipefail

EXAMPLES_DIR=${1:?usage: $0 EXAMPLES_DIR [WORK_DIR]}
WORK=${2:-/tmp/miniformer_hf_examples}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
MINIFORMER=${MINIFORMER:-$REPO/.venv/bin/miniformer}
MAX_STEPS=${MAX_STEPS:-5}
SIZE=${SIZE:-tiny}
# run_translation.py refuses a --max_source_length above config.max_position_embeddings instead of
# resizing (run_summarization.py resizes); both default to 1024, as Miniformer's positional table does.
MAX_SOURCE_LENGTH=${MAX_SOURCE_LENGTH:-1024}
USE_HUB_METRICS=${USE_HUB_METRICS:-0}
EXAMPLES_DIR=$(cd "$EXAMPLES_DIR" && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
CKPT=$WORK/ckpt
DATA=$WORK/data
RUNDIR=$WORK/run            # cwd of the example runs (holds the local metric stand-ins)
LOGS=$WORK/logs
mkdir -p "$DATA" "$RUNDIR" "$LOGS"

find_script() {  # find_script NAME -> path or empty
    local name=$1
    for candidate in "$EXAMPLES_DIR/$name" "$EXAMPLES_DIR"/examples/pytorch/*/"$name" "$EXAMPLES_DIR"/*/"$name"; do
        [[ -f $candidate ]] && { echo "$candidate"; return; }
    done
}

# ---- 1. a small checkpoint ------------------------------------------------------------------------
if [[ ! -f $CKPT/config.json ]]; then
    echo "== training a $SIZE Miniformer on the dates task -> $CKPT"
    (cd "$WORK" && "$MINIFORMER" train --task dates --size "$SIZE" --max-steps 30 \
        --output-dir "$CKPT" --no-visualize --overwrite -q)
fi

# ---- 2. data files in the formats the example scripts read ----------------------------------------
"$PYTHON" - "$DATA" <<'EOF'
import csv, json, sys
from pathlib import Path
from miniformer_hf.data import load_task

out = Path(sys.argv[1])
splits = load_task("dates", num_train=400, num_validation=40, num_test=40, seed=0)
locales = sorted(set(splits["train"]["locale"]))
for split, rows in splits.items():
    rows = list(rows)
    # translation: JSON lines {"translation": {"src": ..., "tgt": ...}}. The target ends in "." because the
    # JSON loader (pyarrow) would otherwise read a column of bare ISO dates as timestamps, not strings.
    with open(out / f"translation_{split}.json", "w") as f:
        for r in rows:
            pair = {"src": r["source"], "tgt": r["target"] + "."}
            f.write(json.dumps({"translation": pair}, ensure_ascii=False) + "\n")
    # summarization: CSV with text/summary columns
    with open(out / f"summarization_{split}.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["text", "summary"])
        w.writerows([r["source"], r["target"]] for r in rows)
    # classification: CSV sentence,label (label = locale index, i.e. multi-class with num_labels != 2).
    # Integer labels: with datasets 5.x a CSV string column is `large_string`, and the scripts' map() that
    # turns label names into ids gets cast back to strings ('3'), which the collator cannot batch.
    with open(out / f"classification_{split}.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["sentence", "label"])
        w.writerows([r["source"], locales.index(r["locale"])] for r in rows)
    # causal LM: plain text, one "source = target" line per example
    with open(out / f"clm_{split}.txt", "w") as f:
        f.writelines(f"{r['source']} = {r['target']}\n" for r in rows)
print(f"data files in {out}; {len(locales)} classification labels")
EOF

# ---- 3. offline stand-ins for the Hub metrics ------------------------------------------------------
if [[ $USE_HUB_METRICS == 0 ]]; then
    mkdir -p "$RUNDIR/accuracy" "$RUNDIR/sacrebleu" "$RUNDIR/rouge"
    cat > "$RUNDIR/accuracy/accuracy.py" <<'EOF'
"""Offline stand-in for the Hub `accuracy` metric (same inputs and output key)."""
import datasets
import evaluate
import numpy as np

class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="accuracy", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}))
    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        p, r = np.asarray(predictions), np.asarray(references)
        return {"accuracy": float((p == r).mean()) if len(p) else 0.0}
EOF
    cat > "$RUNDIR/sacrebleu/sacrebleu.py" <<'EOF'
"""Offline stand-in for the Hub `sacrebleu` metric (uses the sacrebleu package)."""
import datasets
import evaluate
import sacrebleu as scb

class Sacrebleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="sacrebleu", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}))
    def _compute(self, predictions, references):
        n = len(references[0])
        refs = [[r[i] for r in references] for i in range(n)]
        out = scb.corpus_bleu(predictions, refs)
        return {"score": out.score, "counts": out.counts, "totals": out.totals,
                "precisions": out.precisions, "bp": out.bp, "sys_len": out.sys_len, "ref_len": out.ref_len}
EOF
    cat > "$RUNDIR/rouge/rouge.py" <<'EOF'
"""Offline stand-in for the Hub `rouge` metric: whitespace-token ROUGE-1/2/L F1 (no stemming)."""
import datasets
import evaluate

def _ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]

def _f1(overlap, p, r):
    if not p or not r or not overlap:
        return 0.0
    prec, rec = overlap / p, overlap / r
    return 2 * prec * rec / (prec + rec)

def _lcs(a, b):
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]

class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="rouge", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}))
    def _compute(self, predictions, references, use_stemmer=False, **kwargs):
        scores = {"rouge1": [], "rouge2": [], "rougeL": [], "rougeLsum": []}
        for pred, ref in zip(predictions, references):
            p, r = pred.split(), ref.split()
            for n, key in ((1, "rouge1"), (2, "rouge2")):
                pg, rg = _ngrams(p, n), _ngrams(r, n)
                overlap = sum(min(pg.count(g), rg.count(g)) for g in set(pg))
                scores[key].append(_f1(overlap, len(pg), len(rg)))
            lcs = _f1(_lcs(p, r), len(p), len(r))
            scores["rougeL"].append(lcs); scores["rougeLsum"].append(lcs)
        return {k: sum(v) / len(v) if v else 0.0 for k, v in scores.items()}
EOF
    # run_summarization.py needs nltk's punkt data (it downloads it unless offline): an empty Punkt
    # model (splits only on sentence punctuation) stands in for it.
    if [[ -z ${NLTK_DATA:-} ]]; then
        export NLTK_DATA=$WORK/nltk_data
        mkdir -p "$NLTK_DATA/tokenizers/punkt" "$NLTK_DATA/tokenizers/punkt_tab/english"
        for f in collocations.tab sent_starters.txt abbrev_types.txt ortho_context.tab; do
            : > "$NLTK_DATA/tokenizers/punkt_tab/english/$f"
        done
    fi
fi

# ---- 4. the runs, with miniformer_hf made unimportable ---------------------------------------------
# A tiny launcher: poison miniformer_hf in sys.modules, then run the example as __main__.
cat > "$WORK/launch.py" <<'EOF'
import runpy, sys
sys.modules["miniformer_hf"] = None  # any `import miniformer_hf` now raises ImportError
try:
    import miniformer_hf  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("miniformer_hf is importable; isolation failed")
script, sys.argv = sys.argv[1], sys.argv[1:]
sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
runpy.run_path(script, run_name="__main__")
EOF

export PYTHONNOUSERSITE=1 HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}
export HF_MODULES_CACHE=$WORK/hf_modules     # fresh copy of the checkpoint's remote code
export HF_DATASETS_CACHE=$WORK/hf_datasets_cache TOKENIZERS_PARALLELISM=false WANDB_DISABLED=true
rm -rf "$HF_MODULES_CACHE"

COMMON=(--model_name_or_path "$CKPT" --trust_remote_code --do_train --do_eval
        --max_steps "$MAX_STEPS" --per_device_train_batch_size 4 --per_device_eval_batch_size 8
        --use_cpu --report_to none --save_strategy no --seed 0)
declare -A RESULT

run() {  # run NAME SCRIPT ARGS...
    local name=$1 script; script=$(find_script "$2"); shift 2
    if [[ -z $script ]]; then RESULT[$name]="SKIPPED (script not found)"; return; fi
    echo "== $name: $(basename "$script") $*"
    rm -rf "$WORK/out/$name"  # transformers 5.x has no --overwrite_output_dir
    if (cd "$RUNDIR" && "$PYTHON" "$WORK/launch.py" "$script" "${COMMON[@]}" \
            --output_dir "$WORK/out/$name" "$@") > "$LOGS/$name.log" 2>&1; then
        RESULT[$name]="PASS"
    else
        RESULT[$name]="FAIL (see $LOGS/$name.log)"
        tail -n 25 "$LOGS/$name.log"
    fi
}

run translation run_translation.py \
    --train_file "$DATA/translation_train.json" --validation_file "$DATA/translation_validation.json" \
    --test_file "$DATA/translation_test.json" --source_lang src --target_lang tgt \
    --max_source_length "$MAX_SOURCE_LENGTH" \
    --do_predict --predict_with_generate --max_target_length 16 --generation_max_length 16
run summarization run_summarization.py \
    --train_file "$DATA/summarization_train.csv" --validation_file "$DATA/summarization_validation.csv" \
    --test_file "$DATA/summarization_test.csv" \
    --do_predict --predict_with_generate --max_target_length 16 --generation_max_length 16
run glue run_glue.py \
    --train_file "$DATA/classification_train.csv" --validation_file "$DATA/classification_validation.csv" \
    --max_seq_length 64 --ignore_mismatched_sizes
run classification run_classification.py \
    --train_file "$DATA/classification_train.csv" --validation_file "$DATA/classification_validation.csv" \
    --max_seq_length 64 --ignore_mismatched_sizes
run clm run_clm.py \
    --train_file "$DATA/clm_train.txt" --validation_file "$DATA/clm_validation.txt" --block_size 64

echo
echo "== results (logs in $LOGS, metrics in $WORK/out/*/all_results.json)"
status=0
for name in translation summarization glue classification clm; do
    printf '%-15s %s\n' "$name" "${RESULT[$name]:-?}"
    [[ ${RESULT[$name]:-} == FAIL* ]] && status=1
    [[ -f $WORK/out/$name/all_results.json ]] && "$PYTHON" -c "import json,sys;d=json.load(open(sys.argv[1]));print('   ', {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items() if k.startswith(('eval_', 'predict_', 'perplexity')) and 'runtime' not in k and 'per_second' not in k})" "$WORK/out/$name/all_results.json"
done
exit $status
