"""Build tests/fixtures/epochs_seeds from two `--seeds` runs of the default task, keeping only what the report's
comparison reads: each results directory's index.jsonl and each seed's test predictions (example id, label,
prediction; the probabilities are dropped to keep the fixture small).

    OMP_NUM_THREADS=2 python main.py --seeds 1,2,3 --epochs 1 --output_dir /tmp/h23/e1
    OMP_NUM_THREADS=2 python main.py --seeds 1,2,3 --epochs 2 --output_dir /tmp/h23/e2
    python scripts/epochs_seeds_fixture.py /tmp/h23/e1 /tmp/h23/e2
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "epochs_seeds"


def main(results_dirs: list[str]) -> None:
    for results in map(Path, results_dirs):
        target = FIXTURE / results.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(results / "index.jsonl", target / "index.jsonl")
        for predictions in sorted(results.glob("seed*/predictions/test.parquet")):
            out = target / predictions.relative_to(results)
            out.parent.mkdir(parents=True, exist_ok=True)
            pd.read_parquet(predictions, columns=["example_id", "label", "prediction"]).to_parquet(out, index=False)
    print(f"{FIXTURE}: {sum(p.stat().st_size for p in FIXTURE.rglob('*') if p.is_file()):,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
