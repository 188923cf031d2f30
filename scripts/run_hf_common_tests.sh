#!/usr/bin/env bash
# Run transformers' own common model and generation test mixins (ModelTesterMixin, GenerationTesterMixin,
# PipelineTesterMixin) against Miniformer, and BART's own test file beside it for comparison.
#
# The mixins are not in the transformers wheel. This dev script (not a test: it needs the network) unpacks
# the matching transformers sdist, which carries tests/test_modeling_common.py and friends, and fetches the
# few test files the sdist leaves out (generation/test_utils.py, exporters/test_export.py, the BART test)
# from the same release tag on GitHub. Everything lands in $HF_TESTS_DIR, outside the repository.
#
#   scripts/run_hf_common_tests.sh                 # Miniformer only
#   scripts/run_hf_common_tests.sh --bart          # Miniformer, then BART's own tests as the baseline
#   HF_TESTS_DIR=/tmp/hf-tests scripts/run_hf_common_tests.sh -k generate   # reuse a prepared dir; pytest args
#
# A prepared $HF_TESTS_DIR (tests/ package and src/ beside it) is reused as is, so this also runs offline.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-python}
VERSION=$($PY -c "import transformers; print(transformers.__version__)")
HF_TESTS_DIR=${HF_TESTS_DIR:-/tmp/hf-tests-$VERSION}
RUN_BART=0
if [ "${1:-}" = "--bart" ]; then RUN_BART=1; shift; fi

if [ ! -f "$HF_TESTS_DIR/tests/test_modeling_common.py" ]; then
    mkdir -p "$HF_TESTS_DIR/download"
    $PY -m pip download --quiet "transformers==$VERSION" --no-binary :all: --no-deps -d "$HF_TESTS_DIR/download"
    tar -xzf "$HF_TESTS_DIR/download/transformers-$VERSION.tar.gz" -C "$HF_TESTS_DIR" --strip-components=1 \
        "transformers-$VERSION/tests" "transformers-$VERSION/src"
    RAW="https://raw.githubusercontent.com/huggingface/transformers/v$VERSION"
    for path in tests/generation/test_utils.py tests/exporters/test_export.py tests/models/bart/test_modeling_bart.py \
        tests/utils/test_configuration_utils.py tests/utils/tiny_model_summary.json; do
        mkdir -p "$HF_TESTS_DIR/$(dirname "$path")"
        curl -fsSL "$RAW/$path" -o "$HF_TESTS_DIR/$path"
    done
    for package in tests tests/generation tests/exporters tests/models tests/models/bart tests/utils; do  # the sdist has no tests/__init__.py
        touch "$HF_TESTS_DIR/$package/__init__.py"
    done
    # test_configuration_common only needs `config_common_kwargs` from this file; the rest imports test-only
    # modules from the transformers checkout, so keep just that dictionary.
    $PY - "$HF_TESTS_DIR/tests/utils/test_configuration_utils.py" <<'EOF'
import sys
path = sys.argv[1]
source = open(path).read()
start = source.index("config_common_kwargs = {")
end = source.index("\n}\n", start) + 3
open(path, "w").write(source[start:end])
EOF
fi

# Test-only dependencies of the mixins, kept out of the project's environment.
DEPS="$HF_TESTS_DIR/deps"
if [ ! -d "$DEPS/parameterized" ]; then
    $PY -m pip install --quiet --target "$DEPS" parameterized timeout-decorator
fi

export PYTHONPATH="$DEPS:$HF_TESTS_DIR${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1
status=0
( cd "$REPO/scripts/hf_common_tests" && time $PY -m pytest -q -p no:cacheprovider --timeout 300 -rfEs \
    test_miniformer_common.py "$@" ) || status=$?
if [ "$RUN_BART" = "1" ]; then
    ( cd "$REPO/scripts/hf_common_tests" && time $PY -m pytest -q -p no:cacheprovider --timeout 300 -rfEs \
        "$HF_TESTS_DIR/tests/models/bart/test_modeling_bart.py" -k "BartModelTest or BartStandaloneDecoderModelTest" \
        "$@" ) || status=$?
fi
exit $status
