"""The GDSS graph benchmarks (Jo et al. 2022): ``community_small``, ``ego_small``, ``grid``, ``enzymes``.

graphdiff reads them as ``<name>.json.gz`` -- a JSON list of ``{"num_nodes": n, "edges": [[u, v], ...]}`` in the
order of GDSS's pickle -- from ``<root>/<name>/raw/`` or ``$GRAPHDIFF_DATA_DIR/graphs/``. Without such a copy it
downloads the canonical pickled NetworkX list from the GDSS repository (``data/<file>.pkl`` at the commit
:data:`~graphdiff.datasets.sources.GDSS_COMMIT`, checked against its SHA-256) and reads that with the restricted
unpickler of :mod:`graphdiff.datasets.graph_formats`. The split is GDSS's
(:func:`~graphdiff.datasets.splits.gdss_split`): ``test`` = the first ``int(0.2 * G)`` graphs of the file,
``train`` = the rest; GDSS has no validation set and evaluates on ``test``, so ``val`` is the ``test`` indices
unless ``val_fraction > 0`` carves it from ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphdiff.datasets.dataset import BuildContext, Builder, BuiltDataset
from graphdiff.datasets.graph_formats import UNLABELLED_EDGES, UNLABELLED_NODES, graph_format, read_graph_file
from graphdiff.datasets.registry import register
from graphdiff.datasets.sources import GDSS_DATA_URL, RawFile, resolve
from graphdiff.datasets.splits import gdss_split
from graphdiff.errors import DataError
from graphdiff.io import file_sha256
from graphdiff.log import get_logger
from graphdiff.storage import GraphList

log = get_logger(__name__)


@dataclass(frozen=True)
class GdssSet:
    """A GDSS benchmark set: the JSON copy graphdiff reads and the canonical pickle it came from."""

    json_name: str
    json_sha256: str
    pickle_name: str
    pickle_sha256: str
    description: str


GDSS_SETS: dict[str, GdssSet] = {
    "community_small": GdssSet(
        "community_small.json.gz",
        "615bebe8d062a5307c59110980d0b362d3ef7795d2d9a19c1bdd4a389d12cbe1",
        "community_small.pkl",
        "ee0390de8ca9855e40b3a81cf0a84bfd0114a9a42ace369eb08a925e4d988157",
        "GDSS community-small: 100 graphs of two communities, 12-20 nodes",
    ),
    "ego_small": GdssSet(
        "ego_small.json.gz",
        "27f3cb5bf27ab0be0d37ed4e9cd8bd2b758aac3fbf08ade625c9f2778d425a38",
        "ego_small.pkl",
        "eb1af8c3094929748a67b75c4f33ad364c1361d711c0fe14fa8c4d1681918dba",
        "GDSS ego-small: 200 one-hop ego graphs of Citeseer, 4-17 nodes",
    ),
    "grid": GdssSet(
        "grid.json.gz",
        "575643e21cc6e7d3cb426f645ac20895304a8d01f011cc50e9d1983ff245ee77",
        "grid.pkl",
        "1c533398435301faaa1282993e1738069cafcc5e7662b284a3dba23cee680104",
        "GDSS grid: 100 2-D grid graphs, 110-361 nodes",
    ),
    "enzymes": GdssSet(
        "enzymes.json.gz",
        "c410143a78d132fbecdc0b2dc59d0dc46c8bf1d4bdac4121fcb2ffef3bc82f91",
        "ENZYMES.pkl",
        "d1fb37bd6322be1e7ee5e324672003b2b24b9b2e496d047a42e8f5a404cde110",
        "GDSS ENZYMES: 587 protein graphs (TU data set), 10-125 nodes",
    ),
}


def _gdss_file(name: str, root: Path) -> tuple[Path, dict[str, Any]]:
    """The JSON copy if there is one, else the canonical GDSS pickle (downloaded if needed)."""
    spec = GDSS_SETS[name]
    try:
        path = resolve(name, RawFile(spec.json_name, None, spec.json_sha256, "graphs"), root, download=False)
        return path, {"origin": GDSS_DATA_URL + spec.pickle_name}
    except DataError:
        pass
    url = GDSS_DATA_URL + spec.pickle_name
    try:
        return resolve(name, RawFile(spec.pickle_name, url, spec.pickle_sha256, "graphs"), root), {"origin": url}
    except DataError as exc:
        raise DataError(
            f"{name}: neither {spec.json_name} nor {spec.pickle_name} is available "
            f"(place either in {root / name / 'raw'}); {exc}"
        ) from None


def _gdss_builder(name: str) -> Builder:
    def build(ctx: BuildContext) -> BuiltDataset:
        spec = GDSS_SETS[name]
        path, extra = _gdss_file(name, ctx.root)
        digest = file_sha256(path)
        if path.name == spec.json_name and digest != spec.json_sha256:
            log.warning("%s: SHA-256 %s… differs from the reference copy (%s…)", path, digest[:12],
                        spec.json_sha256[:12])
        parsed = read_graph_file(path)
        graphs = GraphList.from_graphs(parsed.triples)
        return BuiltDataset(
            graphs=graphs,
            splits=gdss_split(len(graphs), ctx.options["val_fraction"]),
            kind="graph",
            node_types=list(UNLABELLED_NODES),
            edge_types=list(UNLABELLED_EDGES),
            source={"file": str(path), "sha256": digest, "format": graph_format(path), **extra},
        )

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Builder of the GDSS ``{name}`` dataset (see the module docstring)."
    return build


for _name, _spec in GDSS_SETS.items():
    register(_name, "graph", _spec.description, val_fraction=0.0)(_gdss_builder(_name))
