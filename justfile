# bertsecrets: common jobs. `just --list` shows them.

set positional-arguments

# Install bertsecrets with its development tools (CPU torch first on machines that carry it).
install:
    python -m pip install --upgrade pip
    python -m pip install 'torch==2.13.0' || python -m pip install 'torch>=2.5,<3'
    python -m pip install -e '.[dev]'

# Fine-tune, store the maps and run the analyses of a GLUE task: `just ingest mrpc --model minilm`.
ingest *args:
    @bertsecrets ingest "$@"

# The test suite (about a few minutes on 2 cores); pass pytest options, e.g. `just test -k store`.
test *args:
    @python -m pytest "$@"

# Speed and size benchmarks, each printing the ratio it is judged by: `just bench [name]`.
bench *args:
    @python -m bench "$@"

# Browse a store in the terminal.
browse *args:
    @bertsecrets browse "$@"

# Redraw docs/analyses.md's pictures of the pattern-class thresholds from a store whose MRPC run this version analysed.
boundaries store:
    @bertsecrets figures mrpc --only boundaries --store "$1" --out docs/img

# Read-only SQL on the catalog: `just sql "SELECT * FROM runs"`.
sql query *args:
    @bertsecrets sql "$@"

# Check that the store and its catalog agree.
check *args:
    @bertsecrets check "$@"

# Architecture contracts (layers, no cycles, no torch in store/ or the TUI), checked on the installed package.
lint:
    @python -m pytest -q tests/test_architecture.py -k contracts

# The paper's claims checked across tasks and seeds: report/findings.md with its figures.
report *args:
    @bertsecrets report "$@"
