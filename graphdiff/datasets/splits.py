"""Train / val / test splits: the recipes of the papers each benchmark comes from, and random fractions.

Every function returns split name -> indices into the dataset's graphs; the registry saves them, so a split never
changes once a dataset is built.

* :func:`spectre_split`: the generated graphs (DiGress / SPECTRE).
* :func:`gdss_split`: the GDSS graph sets (test = the first 20 % of the file).
* :func:`qm9_split`: QM9 (DiGress: shuffle with seed 42, 100,000 train, 10 % test).
* :func:`fraction_split`: users' files (random fractions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from graphdiff.errors import ConfigError

QM9_FULL_SIZE = 130_831
QM9_TRAIN_SIZE = 100_000


def check_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    """``split`` as three floats ``(train, val, test)``.

    Raises:
        ConfigError: not three non-negative numbers summing to 1.
    """
    try:
        values = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        raise ConfigError(f"split={split!r}: expected three fractions (train, val, test)") from None
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split={list(split)}: expected three non-negative fractions summing to 1")
    return values  # type: ignore[return-value]


def fraction_split(num_graphs: int, fractions: Sequence[float], seed: int = 0) -> dict[str, Tensor]:
    """A random train / val / test split by fractions.

    ``val = round(f_val * G)``, ``test = round(f_test * G)``, ``train`` = the rest; a permutation
    ``torch.randperm(G, generator=torch.Generator().manual_seed(seed))`` gives train its first
    entries, then val, then test.

    Returns:
        ``{"train", "val", "test"}`` -> sorted ``[k]`` long indices.

    Raises:
        ConfigError: bad fractions, or fractions that leave no training graph.
    """
    _, f_val, f_test = check_fractions(fractions)
    n_val, n_test = int(round(f_val * num_graphs)), int(round(f_test * num_graphs))
    n_train = num_graphs - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"split {list(fractions)} of {num_graphs} graphs leaves no training graph")
    perm = torch.randperm(num_graphs, generator=torch.Generator().manual_seed(int(seed)))
    parts = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
    return {k: torch.sort(v).values for k, v in parts.items()}


def spectre_split(num_graphs: int, split_seed: int = 0) -> dict[str, Tensor]:
    """DiGress / SPECTRE train-val-test split of the generated graphs (``SpectreGraphDataset``).

    ``test = round(0.2 G)``, ``train = round(0.8 (G - test))``, ``val = G - train - test``; a permutation
    ``torch.randperm(G, generator=torch.Generator().manual_seed(split_seed))`` gives train its first ``train``
    entries, val the next ``val`` and test the rest. For 200 graphs this is 128 / 32 / 40. (SPECTRE itself cuts the
    same sizes with ``torch.utils.data.random_split`` and seed 1234.)

    Returns:
        ``{"train", "val", "test"}`` -> sorted ``[k]`` long indices, disjoint, covering ``0..num_graphs-1``.
    """
    test_len = int(round(num_graphs * 0.2))
    train_len = int(round((num_graphs - test_len) * 0.8))
    val_len = num_graphs - train_len - test_len
    perm = torch.randperm(num_graphs, generator=torch.Generator().manual_seed(split_seed))
    parts = {
        "train": perm[:train_len],
        "val": perm[train_len : train_len + val_len],
        "test": perm[train_len + val_len :],
    }
    return {k: torch.sort(v).values for k, v in parts.items()}


def gdss_split(num_graphs: int, val_fraction: float = 0.0) -> dict[str, Tensor]:
    """GDSS's split: ``test`` = the first ``int(0.2 * G)`` graphs, ``train`` = the rest (file order).

    GDSS has no validation set. With ``val_fraction == 0`` ``val`` holds the ``test`` indices (GDSS
    evaluates on test); otherwise ``val`` is the last ``round(val_fraction * len(train))`` graphs of
    ``train``, removed from it.

    Returns:
        ``{"train", "val", "test"}`` -> ``[k]`` long indices in file order.

    Raises:
        ConfigError: ``val_fraction`` outside ``[0, 1)`` or giving no graph to val or train.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, int | float) or not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction!r}: expected a number in [0, 1)")
    test_size = int(0.2 * num_graphs)
    test = torch.arange(test_size)
    train = torch.arange(test_size, num_graphs)
    if val_fraction == 0:
        return {"train": train, "val": test.clone(), "test": test}
    n_val = int(round(val_fraction * train.numel()))
    if not 0 < n_val < train.numel():
        raise ConfigError(f"val_fraction={val_fraction} of {train.numel()} training graphs gives {n_val} graphs")
    return {"train": train[:-n_val], "val": train[-n_val:], "test": test}


def qm9_split(num_graphs: int, seed: int = 42) -> dict[str, np.ndarray]:
    """DiGress's QM9 split: shuffle, then 100,000 train, 10% test, the rest validation.

    The shuffle is ``numpy.random.RandomState(seed).permutation(num_graphs)`` -- the order
    ``pandas.DataFrame.sample(frac=1, random_state=seed)`` gives, which DiGress uses. Then
    ``n_test = int(0.1 * G)``, ``n_train = round(G * 100000 / 130831)`` (exactly 100,000 for the
    full data set; proportional for subsets such as ``limit``), and the permutation gives train its
    first ``n_train`` entries, val the next ``G - n_train - n_test``, test the last ``n_test``.

    Returns:
        ``{"train", "val", "test"}`` -> ``[k]`` int64 indices in shuffle order.
    """
    perm = np.random.RandomState(seed).permutation(num_graphs)
    n_test = int(0.1 * num_graphs)
    n_train = min(int(round(num_graphs * QM9_TRAIN_SIZE / QM9_FULL_SIZE)), num_graphs - n_test)
    return {"train": perm[:n_train], "val": perm[n_train : num_graphs - n_test], "test": perm[num_graphs - n_test :]}
