"""Structural features computed from the noisy graph and appended to the denoiser's input (DiGress §4.3).

A message-passing or attention network cannot count cycles or see the spectrum of a graph on its own, so DiGress
adds such features to its input at every denoising step. Everything here is batched over the padded
``[B, n, ...]`` tensors (no Python loop over graphs), ignores padded nodes and is computed without gradient.

Definitions (``A`` the ``[B, n, n]`` adjacency of the noisy graph: the sum of the edge-class channels ``1..de-1``,
restricted to real nodes; ``d = A 1`` the degrees):

* cycles — per node, the number of simple 3-, 4- and 5-cycles through the node; per graph, the number of simple
  3-, 4-, 5- and 6-cycles; all divided by 10 and clipped to at most 1, as DiGress's ``NodeCycleFeatures``.
* spectrum — from the combinatorial Laplacian ``L = D - A`` of the real nodes: the number of connected
  components ``c``, the 5 smallest non-zero eigenvalues divided by the node count (``2`` where the graph has
  fewer), an indicator of the nodes *outside* the largest connected component, and the 2 eigenvectors that follow
  the ``c`` null-space vectors.
* molecular — formal charge per atom (from the node-type names), current valence per atom (sum of bond orders,
  aromatic = 1.5) and molecular weight per graph.

See ``docs/models.md`` for the formulas and how they differ from the DiGress reference code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from graphdiff.chem import bond_orders_from_names
from graphdiff.errors import ConfigError
from graphdiff.models.base import GraphDims
from graphdiff.types import DenseGraph

if TYPE_CHECKING:
    from graphdiff.info import DatasetInfo

FeatureMode = Literal["none", "cycles", "eigenvalues", "all", "rrwp"]
FEATURE_MODES: tuple[str, ...] = ("none", "cycles", "eigenvalues", "all", "rrwp")

#: How the denoiser's input is built: ``"graphdiff"`` (exact features, the default) or ``"digress"`` (the reference
#: code's features, and "no edge" one-hots on the diagonal of the noisy E; see ``docs/models.md``).
InputProtocol = Literal["graphdiff", "digress"]
INPUT_PROTOCOLS: tuple[str, ...] = ("graphdiff", "digress")

#: DiGress's hard-coded divisors of the molecular weight feature (``max_weight`` of its dataset infos).
DIGRESS_MAX_WEIGHT: dict[str, float] = {"qm9": 150.0, "qm9_h": 390.0, "moses": 350.0, "guacamol": 1000.0}


def check_protocol(protocol: str) -> InputProtocol:
    """Return ``protocol`` if it names an input protocol.

    Raises:
        ConfigError: any other value.
    """
    if protocol not in INPUT_PROTOCOLS:
        raise ConfigError(f"unknown model.protocol {protocol!r}; choose one of {', '.join(INPUT_PROTOCOLS)}")
    return protocol  # type: ignore[return-value]

# --------------------------------------------------------------------------------------------------------------
# Adjacency


def adjacency(E: Tensor, node_mask: Tensor) -> Tensor:
    """Weighted adjacency of the real nodes: the total probability (or one-hot) mass of the edge classes ``>= 1``.

    Args:
        E: ``[B, n, n, de]`` edge one-hots or probabilities, class 0 = no edge.
        node_mask: ``[B, n]`` bool.

    Returns:
        ``[B, n, n]`` symmetric when ``E`` is, zero on padding and on the diagonal.
    """
    n = E.shape[1]
    pair = node_mask.unsqueeze(1) & node_mask.unsqueeze(2)
    pair = pair & ~torch.eye(n, dtype=torch.bool, device=E.device)
    A = E[..., 1:].sum(-1)
    return torch.where(pair, A, torch.zeros((), dtype=A.dtype, device=A.device))


# --------------------------------------------------------------------------------------------------------------
# Cycles


def cycle_counts(A: Tensor, protocol: InputProtocol = "graphdiff") -> tuple[Tensor, Tensor]:
    """Exact numbers of simple k-cycles from powers of the adjacency matrix.

    Only ``A^2`` and ``A^3`` are formed: the diagonals of ``A^4``, ``A^5`` and the trace of ``A^6`` are row sums
    of elementwise products of symmetric powers. With ``a_k = diag(A^k)``, ``d`` the degrees and ``t = a_3``:

    * ``c3(i) = a_3 / 2``;
    * ``c4(i) = (a_4 - d(d-1) - A d) / 2``;
    * ``c5(i) = (a_5 - 2 t d + 5 t - A t - 2 (A ∘ A^2) d) / 2`` — closed 5-walks minus those made of a triangle and
      one edge walked back and forth. DiGress's reference drops the ``(A ∘ A^2) d`` and ``5 t`` terms, which is
      exact only on triangle-free graphs;
    * per graph ``C3 = Σt/6``, ``C4 = Σc4/4``, ``C5 = Σc5/5`` and ``C6`` by the closed-walk formula of DiGress
      (Appendix B; MathWorld "Graph Cycle").

    Args:
        A: ``[B, n, n]`` symmetric 0/1 adjacency with an empty diagonal (weighted values give weighted counts).
        protocol: ``"digress"`` counts 5-cycles with the reference's ``c5 = (a_5 - 2 t d - A t + t) / 2``
            (on ``K5``: 36 per node and per graph instead of 12); the other counts are the same.

    Returns:
        ``(node [B, n, 3], graph [B, 4])``: per-node counts of 3-, 4-, 5-cycles through the node and per-graph
        counts of 3-, 4-, 5-, 6-cycles, in ``A``'s dtype.
    """
    A2 = A @ A
    A3 = A2 @ A
    d = A.sum(-1)
    a2 = torch.diagonal(A2, dim1=-2, dim2=-1)
    a3 = torch.diagonal(A3, dim1=-2, dim2=-1)
    a4 = (A2 * A2).sum(-1)  # (A^4)_ii = Σ_j (A^2)_ij (A^2)_ji
    a5 = (A2 * A3).sum(-1)  # (A^5)_ii = Σ_j (A^2)_ij (A^3)_ji
    tr6 = (A3 * A3).sum((-2, -1))

    def matvec(M: Tensor, v: Tensor) -> Tensor:
        return (M @ v.unsqueeze(-1)).squeeze(-1)

    c3 = a3 / 2
    c4 = (a4 - d * (d - 1) - matvec(A, d)) / 2
    if protocol == "digress":
        c5 = (a5 - 2 * a3 * d - matvec(A, a3) + a3) / 2
    else:
        c5 = (a5 - 2 * a3 * d + 5 * a3 - matvec(A, a3) - 2 * matvec(A * A2, d)) / 2
    c6 = (
        tr6
        - 3 * (a3 * a3).sum(-1)
        + 9 * (A * A2 * A2).sum((-2, -1))
        - 6 * (a2 * a4).sum(-1)
        + 6 * a4.sum(-1)
        - 4 * a3.sum(-1)
        + 4 * (a2**3).sum(-1)
        + 3 * A3.sum((-2, -1))
        - 12 * (a2 * a2).sum(-1)
        + 4 * a2.sum(-1)
    ) / 12
    node = torch.stack((c3, c4, c5), dim=-1)
    graph = torch.stack((c3.sum(-1) / 3, c4.sum(-1) / 4, c5.sum(-1) / 5, c6), dim=-1)
    return node, graph


class CycleFeatures(nn.Module):
    """DiGress's cycle features: counts divided by ``scale`` (10) and clipped to at most 1.

    Args:
        scale: divisor of the counts.
        dtype: dtype of the matrix products (float64 keeps the counts exact for dense graphs of a few hundred
            nodes, where entries of ``A^3`` exceed float32's 2^24).
        protocol: ``"digress"`` for the reference's 5-cycle formula (see :func:`cycle_counts`).
    """

    node_dim = 3
    graph_dim = 4

    def __init__(self, scale: float = 10.0, dtype: torch.dtype = torch.float64,
                 protocol: InputProtocol = "graphdiff") -> None:
        super().__init__()
        self.scale = scale
        self.dtype = dtype
        self.protocol = check_protocol(protocol)

    def forward(self, A: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled cycle features.

        Args:
            A: ``[B, n, n]`` adjacency from :func:`adjacency`.
            node_mask: ``[B, n]`` bool.

        Returns:
            ``(node [B, n, 3], graph [B, 4])`` in ``A``'s dtype, zero on padded nodes.
        """
        node, graph = cycle_counts(A.to(self.dtype), self.protocol)
        node = (node / self.scale).clamp(max=1.0) * node_mask.unsqueeze(-1)
        graph = (graph / self.scale).clamp(max=1.0)
        return node.to(A.dtype), graph.to(A.dtype)


# --------------------------------------------------------------------------------------------------------------
# Connected components and spectrum


def connected_components(A: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Connected components of the support of ``A`` by repeated squaring of the reachability matrix.

    ``ceil(log2 n)`` boolean matrix products, exact (no eigenvalue threshold).

    Args:
        A: ``[B, n, n]`` adjacency (an entry ``> 0`` is an edge).
        node_mask: ``[B, n]`` bool.

    Returns:
        ``(num_components [B] long, component_size [B, n] long)``; sizes are 0 on padded nodes.
    """
    n = A.shape[-1]
    real_pair = node_mask.unsqueeze(1) & node_mask.unsqueeze(2)
    eye = torch.eye(n, dtype=torch.bool, device=A.device)
    reach = ((A > 0) | eye) & real_pair
    for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
        R = reach.to(torch.float32)
        reach = (R @ R) > 0
    size = reach.sum(-1)
    # A node is its component's representative if no smaller index reaches it.
    first = torch.argmax(reach.to(torch.uint8), dim=-1)  # first reachable index (a node reaches itself)
    is_root = (first == torch.arange(n, device=A.device)) & node_mask
    return is_root.sum(-1), size


def _canonical_sign(vectors: Tensor) -> Tensor:
    """Flip eigenvectors (columns of ``[B, n, k]``) so that the sum of cubes of their entries is non-negative.

    The sum of cubes is invariant to permuting nodes, so the choice is permutation-equivariant; it leaves the
    sign arbitrary only when that sum vanishes (e.g. eigenvectors antisymmetric under a graph automorphism).
    """
    sign = torch.where((vectors**3).sum(-2, keepdim=True) < 0, -1.0, 1.0).to(vectors.dtype)
    return vectors * sign


class RandomWalkFeatures(nn.Module):
    """Relative random-walk probabilities (RRWP, DeFoG's ``rrwp`` features): the first ``K`` powers of the
    random-walk matrix ``P = D^-1 A``.

    Edge features ``[I, P, P^2, ..., P^(K-1)]_ij`` (landing probabilities from ``i`` to ``j``), node features
    their diagonals (return probabilities). A node without neighbours has a zero row of ``P``. Batched: ``K - 1``
    dense matrix products, no loop over graphs; ``O(K n^3)`` per graph against ``O(n^3)`` for one
    eigendecomposition, but matmuls rather than ``eigh``.

    Args:
        steps: ``K``, the number of powers (DeFoG: 12; 20 for SBM, MOSES, GuacaMol, ZINC).
    """

    def __init__(self, steps: int = 12) -> None:
        super().__init__()
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"rrwp_steps must be a positive integer, got {steps!r}")
        self.steps = steps

    def forward(self, A: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(node [B, n, K], edge [B, n, n, K])`` for the weighted adjacency ``A [B, n, n]``; zero on padding."""
        degree = A.sum(-1, keepdim=True)
        P = torch.where(degree > 0, A / degree.clamp_min(torch.finfo(A.dtype).tiny), torch.zeros_like(A))
        power = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)
        powers = [power]
        for _ in range(self.steps - 1):
            power = power @ P
            powers.append(power)
        edge = torch.stack(powers, dim=-1)
        pair = (node_mask.unsqueeze(1) & node_mask.unsqueeze(2)).unsqueeze(-1)
        edge = edge * pair
        node = torch.diagonal(edge, dim1=1, dim2=2).transpose(1, 2)
        return node, edge


class SpectralFeatures(nn.Module):
    """Laplacian spectrum features of DiGress's ``EigenFeatures`` ("eigenvalues" and "all" modes).

    Padded nodes get a diagonal ``2n`` (``n`` the padded width) in ``L`` and no edges: their eigenvalues are larger
    than any real one (the largest Laplacian eigenvalue is at most ``2 max deg < 2n``) and their eigenvectors are
    supported on padding only, so they sort last and are never selected; a padded node therefore never creates a
    spurious zero eigenvalue. The decomposition runs in float64 by default; no gradient flows through it.

    Args:
        with_vectors: also return the eigenvector features ("all" mode).
        num_eigenvalues: number of non-zero eigenvalues kept (DiGress: 5).
        num_eigenvectors: number of non-trivial eigenvectors kept (DiGress: 2).
        dtype: dtype of the eigendecomposition.
        protocol: ``"digress"`` fills an eigenvalue slot whose index lies in ``[m, n)`` with the padded node's
            eigenvalue divided by ``m`` (``2n / m``), as the reference does, and with 2 only past ``n``; the
            default fills every slot at an index ``>= m`` with 2, so the features do not depend on the padding.
    """

    def __init__(
        self,
        with_vectors: bool,
        num_eigenvalues: int = 5,
        num_eigenvectors: int = 2,
        dtype: torch.dtype = torch.float64,
        protocol: InputProtocol = "graphdiff",
    ) -> None:
        super().__init__()
        self.with_vectors = with_vectors
        self.num_eigenvalues = num_eigenvalues
        self.num_eigenvectors = num_eigenvectors
        self.dtype = dtype
        self.protocol = check_protocol(protocol)

    @property
    def node_dim(self) -> int:
        return 1 + self.num_eigenvectors if self.with_vectors else 0

    @property
    def graph_dim(self) -> int:
        return 1 + self.num_eigenvalues

    def forward(self, A: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Spectral features.

        Args:
            A: ``[B, n, n]`` adjacency from :func:`adjacency`.
            node_mask: ``[B, n]`` bool.

        Returns:
            ``(node [B, n, node_dim], graph [B, 1 + num_eigenvalues])`` in ``A``'s dtype. ``graph`` is
            ``[num_components, λ_1/m, ..., λ_k/m]`` (``m`` real nodes, ``λ`` the smallest non-zero eigenvalues,
            2 where missing); ``node`` is ``[not_in_largest_component, v_1, ..., v_k]`` (zero on padding).
        """
        B, n, _ = A.shape
        out_dtype = A.dtype
        A = A.to(self.dtype)
        num_components, size = connected_components(A, node_mask)
        num_nodes = node_mask.sum(-1)

        L = torch.diag_embed(A.sum(-1)) - A
        L = (L + L.transpose(1, 2)) / 2
        pad_diag = (~node_mask).to(self.dtype) * (2.0 * n)
        L = L + torch.diag_embed(pad_diag)
        if self.with_vectors:
            eigvals, eigvecs = torch.linalg.eigh(L)
        else:
            eigvals, eigvecs = torch.linalg.eigvalsh(L), None

        # Skip the c null-space eigenvalues (c known exactly); pad missing ones with 2, as DiGress. The digress
        # protocol reads the padded nodes' eigenvalues (2n, sorted after the m real ones) up to index n - 1.
        idx = num_components.unsqueeze(-1) + torch.arange(self.num_eigenvalues, device=A.device)  # [B, k]
        valid = idx < (num_nodes.unsqueeze(-1) if self.protocol == "graphdiff" else n)
        picked = torch.gather(eigvals, 1, idx.clamp(max=n - 1))
        scaled = picked / num_nodes.clamp(min=1).unsqueeze(-1).to(self.dtype)
        eig_features = torch.where(valid, scaled, torch.full_like(scaled, 2.0))
        graph = torch.cat((num_components.unsqueeze(-1).to(self.dtype), eig_features), dim=-1).to(out_dtype)

        if eigvecs is None:
            return A.new_zeros(B, n, 0).to(out_dtype), graph

        largest = size.max(dim=-1, keepdim=True).values
        not_lcc = (node_mask & (size < largest)).to(self.dtype).unsqueeze(-1)  # ties: all largest count as "in"
        kv = self.num_eigenvectors
        vidx = num_components.unsqueeze(-1) + torch.arange(kv, device=A.device)  # [B, kv]
        vvalid = vidx < num_nodes.unsqueeze(-1)
        vectors = torch.gather(eigvecs, 2, vidx.clamp(max=n - 1).unsqueeze(1).expand(B, n, kv))
        vectors = vectors * (vvalid.unsqueeze(1) & node_mask.unsqueeze(-1)).to(self.dtype)
        vectors = _canonical_sign(vectors)
        node = torch.cat((not_lcc, vectors), dim=-1).to(out_dtype)
        return node, graph


# --------------------------------------------------------------------------------------------------------------
# Molecular features

_CHARGE = re.compile(r"^\[?(?P<atom>[A-Za-z*][a-z]?)(?:H\d*)?(?P<sign>[+-]+)?(?P<count>\d*)\]?$")


def formal_charge(node_type: str) -> int:
    """Formal charge written in a node-type name: ``"C" -> 0``, ``"N+" -> 1``, ``"O-" -> -1``, ``"Fe+2" -> 2``,
    ``"N++" -> 2``, ``"[NH3+]" -> 1``.

    Raises:
        ConfigError: the name is not an atom symbol with an optional charge.
    """
    match = _CHARGE.match(node_type.strip())
    if match is None:
        raise ConfigError(f"cannot read a formal charge from node type {node_type!r} (expected e.g. 'C', 'N+', 'O-')")
    sign = match.group("sign")
    if not sign:
        return 0
    if len(set(sign)) != 1:
        raise ConfigError(f"cannot read a formal charge from node type {node_type!r} (mixed signs)")
    count = int(match.group("count")) if match.group("count") else len(sign)
    return count if sign[0] == "+" else -count


class MolecularFeatures(nn.Module):
    """Formal charge and current valence per atom, molecular weight per graph.

    All three are expectations under the node/edge class probabilities, so they equal the exact values on the
    one-hot graphs of discrete diffusion and stay meaningful on soft inputs.

    * ``charge_i = Σ_c X[i, c] q_c`` (``q_c`` the formal charge of class ``c``);
    * ``valence_i = Σ_j Σ_c E[i, j, c] o_c`` (``o_c`` the bond order of edge class ``c``, aromatic 1.5);
    * ``weight = Σ_i Σ_c X[i, c] w_c / weight_scale``.

    DiGress's reference instead returns ``argmax`` indices of ``X * valencies`` and ``E * orders`` (class
    indices, not values); this is the definition its paper states.

    Args:
        node_types: names of the node classes, e.g. ``["C", "N", "N+", "O", "O-", "F"]``.
        atom_weights: atomic mass of each node class.
        bond_orders: bond order of each edge class (class 0 = no bond = 0).
        weight_scale: divisor of the molecular weight (DiGress: the largest weight in the dataset).
    """

    node_dim = 2
    graph_dim = 1

    def __init__(
        self,
        node_types: Sequence[str],
        atom_weights: Sequence[float],
        bond_orders: Sequence[float],
        weight_scale: float,
    ) -> None:
        super().__init__()
        if len(atom_weights) != len(node_types):
            raise ConfigError(f"atom_weights has {len(atom_weights)} entries for {len(node_types)} node types")
        if weight_scale <= 0:
            raise ConfigError(f"weight_scale must be positive, got {weight_scale}")
        self.node_types = list(node_types)
        self.weight_scale = float(weight_scale)
        charges = [float(formal_charge(name)) for name in node_types]
        self.register_buffer("charges", torch.tensor(charges), persistent=False)
        self.register_buffer("atom_weights", torch.tensor([float(w) for w in atom_weights]), persistent=False)
        self.register_buffer("bond_orders", torch.tensor([float(o) for o in bond_orders]), persistent=False)

    @classmethod
    def from_dataset_info(cls, info: DatasetInfo, bond_orders: Sequence[float] | None = None) -> MolecularFeatures:
        """Build from a molecular :class:`~graphdiff.info.DatasetInfo`.

        The weight scale is ``max_nodes * max(atom_weights)``, an upper bound of any molecule's weight.

        Raises:
            ConfigError: the dataset has no atom weights (not a molecular dataset).
        """
        if not info.atom_weights:
            raise ConfigError(f"dataset {info.name!r} has no atom weights: molecular features need a molecule dataset")
        orders = list(bond_orders) if bond_orders is not None else bond_orders_from_names(info.edge_types)
        scale = info.max_nodes * max(info.atom_weights)
        return cls(info.node_types, info.atom_weights, orders, weight_scale=scale)

    def forward(self, X: Tensor, E: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Molecular features.

        Args:
            X: ``[B, n, dx]`` node one-hots/probabilities (padding zero).
            E: ``[B, n, n, de]`` edge one-hots/probabilities (padding and diagonal zero).
            node_mask: ``[B, n]`` bool.

        Returns:
            ``(node [B, n, 2] = [charge, valence], graph [B, 1] = [weight])``.
        """
        if X.shape[-1] != self.charges.numel() or E.shape[-1] != self.bond_orders.numel():
            raise ValueError(
                f"molecular features built for {self.charges.numel()} node and {self.bond_orders.numel()} "
                f"edge classes, got X {tuple(X.shape)} and E {tuple(E.shape)}"
            )
        x_mask = node_mask.unsqueeze(-1).to(X.dtype)
        charge = X @ self.charges.to(X.dtype)
        valence = (E @ self.bond_orders.to(E.dtype)).sum(-1)
        weight = ((X @ self.atom_weights.to(X.dtype)) * node_mask).sum(-1, keepdim=True) / self.weight_scale
        node = torch.stack((charge, valence.to(X.dtype)), dim=-1) * x_mask
        return node, weight


class DiGressMolecularFeatures(nn.Module):
    """The reference's molecular features (``ExtraMolecularFeatures``), computed from class *indices*.

    With ``o`` the bond orders of the edge classes and ``v`` the node classes' valencies, per real or padded slot:

    * ``valency_i = Σ_j argmax_c(E[i, j, c] o_c)``: the sum of the bond classes' indices (an aromatic bond, class
      4, counts 4), not of their orders;
    * ``charge_i = argmax_c(X[i, c] v_c) - valency_i``: the atom's class index minus that sum;
    * ``weight = Σ_i w[argmax_c X[i, c]] / max_weight`` over every slot of the padded batch, so each padded node
      adds the weight of node class 0.

    Args:
        valencies: valency of each node class (``DatasetInfo.valencies``).
        atom_weights: atomic mass of each node class.
        bond_orders: bond order of each edge class (class 0 = no bond = 0).
        max_weight: divisor of the weight (DiGress's per-dataset ``max_weight``).
    """

    node_dim = 2
    graph_dim = 1

    def __init__(
        self,
        valencies: Sequence[int],
        atom_weights: Sequence[float],
        bond_orders: Sequence[float],
        max_weight: float,
    ) -> None:
        super().__init__()
        if len(atom_weights) != len(valencies):
            raise ConfigError(f"atom_weights has {len(atom_weights)} entries for {len(valencies)} valencies")
        if max_weight <= 0:
            raise ConfigError(f"max_weight must be positive, got {max_weight}")
        self.max_weight = float(max_weight)
        self.register_buffer("valencies", torch.tensor([float(v) for v in valencies]), persistent=False)
        self.register_buffer("atom_weights", torch.tensor([float(w) for w in atom_weights]), persistent=False)
        self.register_buffer("bond_orders", torch.tensor([float(o) for o in bond_orders]), persistent=False)

    @classmethod
    def from_dataset_info(cls, info: DatasetInfo) -> DiGressMolecularFeatures:
        """Build from a molecular :class:`~graphdiff.info.DatasetInfo`; ``max_weight`` is DiGress's constant for
        the datasets it ran (:data:`DIGRESS_MAX_WEIGHT`), else ``max_nodes * max(atom_weights)``.

        Raises:
            ConfigError: the dataset has no atom weights or no valencies.
        """
        if not info.atom_weights or not info.valencies:
            raise ConfigError(f"dataset {info.name!r} has no atom weights or valencies: molecular features need a "
                              "molecule dataset")
        scale = DIGRESS_MAX_WEIGHT.get(info.name, info.max_nodes * max(info.atom_weights))
        return cls(info.valencies, info.atom_weights, bond_orders_from_names(info.edge_types), scale)

    def forward(self, X: Tensor, E: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Molecular features as the reference computes them.

        Args:
            X: ``[B, n, dx]`` node one-hots/probabilities (padding zero).
            E: ``[B, n, n, de]`` edge one-hots/probabilities (padding zero).
            node_mask: ``[B, n]`` bool (unused: the reference does not mask; kept for the common signature).

        Returns:
            ``(node [B, n, 2] = [charge, valency], graph [B, 1] = [weight])`` in ``X``'s dtype.
        """
        if X.shape[-1] != self.valencies.numel() or E.shape[-1] != self.bond_orders.numel():
            raise ValueError(
                f"molecular features built for {self.valencies.numel()} node and {self.bond_orders.numel()} "
                f"edge classes, got X {tuple(X.shape)} and E {tuple(E.shape)}"
            )
        valency = (E * self.bond_orders.to(E.dtype)).argmax(-1).sum(-1)
        atom = (X * self.valencies.to(X.dtype)).argmax(-1)
        charge = atom - valency
        weight = self.atom_weights.to(X.dtype)[X.argmax(-1)].sum(-1, keepdim=True) / self.max_weight
        node = torch.stack((charge, valency), dim=-1).to(X.dtype)
        return node, weight


def molecular_features(info: DatasetInfo, protocol: InputProtocol = "graphdiff"
                       ) -> MolecularFeatures | DiGressMolecularFeatures:
    """The molecular features of ``info`` under ``protocol`` (see :func:`check_protocol`)."""
    if check_protocol(protocol) == "digress":
        return DiGressMolecularFeatures.from_dataset_info(info)
    return MolecularFeatures.from_dataset_info(info)


# --------------------------------------------------------------------------------------------------------------
# Combination


class ExtraFeatures(nn.Module):
    """Every extra feature the denoiser gets, by DiGress's mode name, plus the optional molecular ones.

    ============  ==========================================  ===================================================
    mode          node features (X)                           graph features (y)
    ============  ==========================================  ===================================================
    none          —                                           —
    cycles        c3, c4, c5 (3)                              m/max_nodes, C3..C6 (5)
    eigenvalues   c3, c4, c5 (3)                              m/max_nodes, C3..C6, #components, λ1..λ5 (11)
    all           c3, c4, c5, not-in-LCC, v1, v2 (6)          same as eigenvalues (11)
    rrwp          return probabilities P^k_ii, k < K (K)      m/max_nodes, C3..C6 (5); edges: P^k_ij (K)
    + molecular   charge, valence (+2)                        weight (+1)
    ============  ==========================================  ===================================================

    ``m`` is the number of real nodes. Only ``rrwp`` adds edge features (``dims.E = K``, DeFoG's choice); the others
    add none. The time ``t`` is *not* included: the denoiser appends it.

    Args:
        mode: ``"none"``, ``"cycles"``, ``"eigenvalues"`` or ``"all"``.
        max_nodes: the dataset's largest graph, to scale the node count (needed unless ``mode == "none"``).
        molecular: molecular features to append, or ``None``.
        rrwp_steps: ``K`` of the ``rrwp`` mode.
        protocol: ``"digress"`` for the reference's 5-cycle count and padded eigenvalues (the molecular features
            follow the ``molecular`` module given, see :func:`molecular_features`).
    """

    def __init__(
        self, mode: FeatureMode = "all", max_nodes: int | None = None,
        molecular: MolecularFeatures | DiGressMolecularFeatures | None = None, rrwp_steps: int = 12,
        protocol: InputProtocol = "graphdiff",
    ) -> None:
        super().__init__()
        if mode not in FEATURE_MODES:
            raise ConfigError(f"unknown extra features {mode!r}; choose one of {', '.join(FEATURE_MODES)}")
        if mode != "none" and (max_nodes is None or max_nodes < 1):
            raise ConfigError(f"extra features {mode!r} need max_nodes (the largest graph size), got {max_nodes!r}")
        self.mode = mode
        self.max_nodes = max_nodes
        self.protocol = check_protocol(protocol)
        self.cycles = CycleFeatures(protocol=protocol) if mode != "none" else None
        self.spectral = (SpectralFeatures(with_vectors=mode == "all", protocol=protocol)
                         if mode in ("eigenvalues", "all") else None)
        self.random_walk = RandomWalkFeatures(rrwp_steps) if mode == "rrwp" else None
        self.molecular = molecular

    @property
    def dims(self) -> GraphDims:
        """Widths of the extra ``X``, ``E`` and ``y`` this module returns."""
        x = y = e = 0
        if self.cycles is not None:
            x += CycleFeatures.node_dim if self.random_walk is None else 0
            y += 1 + CycleFeatures.graph_dim
        if self.random_walk is not None:
            x += self.random_walk.steps
            e += self.random_walk.steps
        if self.spectral is not None:
            x += self.spectral.node_dim
            y += self.spectral.graph_dim
        if self.molecular is not None:
            x += MolecularFeatures.node_dim
            y += MolecularFeatures.graph_dim
        return GraphDims(x, e, y)

    @torch.no_grad()
    def forward(self, noisy: DenseGraph) -> DenseGraph:
        """Compute the extra features of a (masked) noisy batch.

        Args:
            noisy: ``X [B, n, dx]``, ``E [B, n, n, de]``, ``node_mask [B, n]``; padding must be zero.

        Returns:
            A :class:`DenseGraph` of the extra features only: ``X [B, n, dims.X]``, ``E [B, n, n, dims.E]``,
            ``y [B, dims.y]``, same ``node_mask``; zero on padded nodes.
        """
        X, E, mask = noisy.X, noisy.E, noisy.node_mask
        B, n = mask.shape
        xs: list[Tensor] = []
        ys: list[Tensor] = []
        extra_E = E.new_zeros(B, n, n, 0)
        if self.cycles is not None:
            A = adjacency(E, mask)
            assert self.max_nodes is not None
            ys.append(mask.sum(-1, keepdim=True).to(X.dtype) / self.max_nodes)
            node, graph = self.cycles(A, mask)
            if self.random_walk is None:
                xs.append(node)
            ys.append(graph)
            if self.random_walk is not None:
                node, extra_E = self.random_walk(A, mask)
                xs.append(node)
            if self.spectral is not None:
                node, graph = self.spectral(A, mask)
                xs.append(node)
                ys.append(graph)
        if self.molecular is not None:
            node, graph = self.molecular(X, E, mask)
            xs.append(node)
            ys.append(graph)
        extra_X = torch.cat(xs, dim=-1).to(X.dtype) if xs else X.new_zeros(B, n, 0)
        extra_y = torch.cat(ys, dim=-1).to(X.dtype) if ys else X.new_zeros(B, 0)
        return DenseGraph(extra_X, extra_E.to(E.dtype), extra_y, mask)
