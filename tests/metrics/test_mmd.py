"""Kernels and the biased MMD² estimator against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance

from graphdiff.metrics.mmd import (
    gaussian_emd_kernel,
    gaussian_kernel,
    gaussian_tv_kernel,
    mmd_squared,
    normalize_histograms,
    pad_histograms,
)


def test_gaussian_tv_by_hand_with_padding() -> None:
    # [1, 1] -> [0.5, 0.5]; [2] -> [1, 0] after zero-padding; TV = (0.5 + 0.5) / 2 = 0.5.
    k = gaussian_tv_kernel(np.array([[0.5, 0.5]]), np.array([[1.0]]), sigma=1.0)
    assert k.shape == (1, 1)
    assert k[0, 0] == pytest.approx(math.exp(-0.25 / 2), rel=1e-15)
    k_small_sigma = gaussian_tv_kernel(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]), sigma=0.1)
    assert k_small_sigma[0, 0] == pytest.approx(math.exp(-0.25 / 0.02), rel=1e-12)


def test_mmd_two_tiny_degree_histograms_by_hand() -> None:
    # Degree histograms of a single edge ([0, 2]) and of a path on 3 nodes ([0, 2, 1]).
    ref, pred = [np.array([0, 2])], [np.array([0, 2, 1])]
    # eps = 0: p = [0, 1, 0], q = [0, 2/3, 1/3]; TV = (1/3 + 1/3) / 2 = 1/3.
    expected = 2 - 2 * math.exp(-((1 / 3) ** 2) / 2)
    assert mmd_squared(ref, pred, "gaussian_tv", normalize_eps=0.0, sigma=1.0) == pytest.approx(expected, rel=1e-12)
    # eps = 1e-6 (SPECTRE): p = [0, 2/(2+eps)], q = [0, 2/(3+eps), 1/(3+eps)] and k(p, p) = 1.
    p = np.array([0, 2 / (2 + 1e-6), 0])
    q = np.array([0, 2 / (3 + 1e-6), 1 / (3 + 1e-6)])
    tv = np.abs(p - q).sum() / 2
    expected_eps = 2 - 2 * math.exp(-(tv**2) / 2)
    assert mmd_squared(ref, pred, "gaussian_tv", sigma=1.0) == pytest.approx(expected_eps, rel=1e-12)


def test_biased_estimator_includes_diagonal_terms() -> None:
    x = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    y = [np.array([1.0, 0.0])]
    k01 = math.exp(-1.0 / 2)  # TV between the two one-hot vectors is 1
    kxx = (1 + k01 + k01 + 1) / 4
    kyy = 1.0
    kxy = (1 + k01) / 2
    assert mmd_squared(x, y, "gaussian_tv", is_hist=False) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-14)


@pytest.mark.parametrize("kernel", ["gaussian_tv", "gaussian_emd", "gaussian"])
def test_mmd_of_a_set_with_itself_is_zero(kernel: str) -> None:
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, 5, size=int(rng.integers(3, 9))) + 1 for _ in range(7)]
    assert mmd_squared(samples, samples, kernel, sigma=1.0) == pytest.approx(0.0, abs=1e-14)


def test_emd_kernel_matches_scipy_wasserstein() -> None:
    rng = np.random.default_rng(1)
    for scaling in (1.0, 100.0):
        x = normalize_histograms([rng.random(12) for _ in range(4)], eps=0.0)
        y = normalize_histograms([rng.random(int(rng.integers(5, 15))) for _ in range(3)], eps=0.0)
        k = gaussian_emd_kernel(pad_histograms(x, 15), pad_histograms(y, 15), sigma=0.5, distance_scaling=scaling)
        for i, xi in enumerate(x):
            for j, yj in enumerate(y):
                emd = wasserstein_distance(np.arange(len(xi)) / scaling, np.arange(len(yj)) / scaling, xi, yj)
                assert k[i, j] == pytest.approx(math.exp(-(emd**2) / (2 * 0.5**2)), rel=1e-10)


def test_gaussian_kernel_by_hand() -> None:
    k = gaussian_kernel(np.array([[3.0, 0.0]]), np.array([[0.0, 4.0]]), 30.0)
    assert k[0, 0] == pytest.approx(math.exp(-25.0 / (2 * 900.0)), rel=1e-15)


def test_padding_equals_explicit_zeros() -> None:
    a = np.array([[0.2, 0.3, 0.5]])
    b_short = np.array([[0.6, 0.4]])
    b_long = np.array([[0.6, 0.4, 0.0]])
    for kernel in (gaussian_tv_kernel, gaussian_kernel, gaussian_emd_kernel):
        assert kernel(a, b_short) == pytest.approx(kernel(a, b_long), rel=1e-15)


def test_empty_sample_gives_nan() -> None:
    assert math.isnan(mmd_squared([], [np.array([1, 2])]))
