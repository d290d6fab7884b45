"""Seconds per GBP classifier iteration (train batch 50, test batch 200), peak RSS, projected
full-MNIST time: ``python benchmarks/continual_gbp.py [--data-dir ../shared/data/mnist]``.
The work is in pipeline.bench_continual (each measurement in a fresh subprocess)."""
from pipeline.bench_continual import main

if __name__ == "__main__":
    main()
