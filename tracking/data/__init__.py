"""Tracking data: GOT-10k-layout reader, synthetic generator, training pairs and labels."""

from tracking.data.got10k import Dataset, DatasetError, Issue, Sequence, read_dataset
from tracking.data.pairs import PairConfig, PairDataset, collate, crop_pair, make_labels
from tracking.data.synth import SynthConfig, generate_synthetic

__all__ = [
    "Dataset", "DatasetError", "Issue", "Sequence", "read_dataset",
    "PairConfig", "PairDataset", "collate", "crop_pair", "make_labels",
    "SynthConfig", "generate_synthetic",
]
