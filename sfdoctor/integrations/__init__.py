"""sfdoctor.watch as framework callbacks: `integrations.transformers` (HF Trainer) and `integrations.lightning`.

Each module imports its framework; importing this package imports neither.
"""
