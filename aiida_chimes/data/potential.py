"""``ChimesPotentialData``: one ChIMES parameter file, stored as ``params.txt``, with queryable attributes.

The file is validated by the parameter-file reader when the node is built, so a stored node always holds a
file that the official tools read.  Its cache hash depends only on the file content (sha256), not on the
name or place the file came from.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib

from aiida import orm
from aiida.common import exceptions
from aiida.orm.nodes.caching import NodeCaching

from aiida_chimes.chimes.params import ChimesParams, format_params, parse_params

__all__ = ("ChimesPotentialData",)


class ChimesPotentialDataCaching(NodeCaching):
    """Hash only the class and the sha256 of the content, so equal files hash equal wherever they came from."""

    def get_objects_to_hash(self) -> dict:
        return {"class": str(self._node.__class__), "sha256": self._node.sha256}


def _read_source(file) -> tuple[bytes, str]:
    """Content (bytes) and a name for error messages of a path (``*.gz`` decompressed) or a file-like object."""
    if isinstance(file, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(file))
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rb") as handle:
                    return handle.read(), path
            return pathlib.Path(path).read_bytes(), path
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the parameter file ({exc.strerror or exc})") from exc
    if hasattr(file, "read"):
        content = file.read()
        name = str(getattr(file, "name", "<stream>"))
        return (content.encode() if isinstance(content, str) else bytes(content)), name
    raise TypeError(f"expected a path, a file-like object or a ChimesParams, got {type(file).__name__}")


def _summary(params: ChimesParams) -> dict:
    """Queryable attributes of a parsed parameter file (see :class:`ChimesPotentialData`)."""
    clusters = []  # (name, elements, number of non-zero coefficients)
    for pair, coeffs in zip(params.pairs, params.pair_coeffs, strict=True):
        clusters.append((pair.name, {pair.atom1, pair.atom2}, int((coeffs != 0).sum())))
    for order, blocks in ((params.orders[1], params.triplets), (params.orders[2], params.quadruplets)):
        if order > 0:
            clusters += [("".join(b.atoms), set(b.atoms), int((b.values != 0).sum())) for b in blocks]
    n_nonzero = sum(n for _, _, n in clusters)
    if params.energy_offsets is not None:  # the 1-body term of an element belongs to that element's tile
        clusters += [(t.symbol, {t.symbol}, int(e != 0)) for t, e in zip(params.types, params.energy_offsets,
                                                                         strict=True)]
    fcut_var = params.fcut_var if params.fcut_type == "TERSOFF" else None
    out = {
        "elements": params.symbols,
        "orders": {"2b": params.orders[0], "3b": params.orders[1], "4b": params.orders[2]},
        "cutoffs": {
            p.name: {"rmin": p.s_minim, "rmax": p.s_maxim, "morse_lambda": p.morse_lambda,
                     "fcut_type": params.fcut_type, "fcut_var": fcut_var}
            for p in params.pairs
        },
        "tiles": [list(t) for t in sorted({tuple(sorted(els)) for _, els, n in clusters if n})],
        "excluded_interactions": [name for name, _, n in clusters if n == 0],
        "n_nonzero": n_nonzero,
    }
    if params.energy_offsets is not None:
        out["energy_offsets"] = {t.symbol: float(e) for t, e in zip(params.types, params.energy_offsets, strict=True)}
    return out


class ChimesPotentialData(orm.SinglefileData):
    """A ChIMES parameter file (``params.txt``); build it from a path, a :class:`ChimesParams` or a stream.

    Attributes set at construction (queryable with ``attributes.<name>``):

    * ``elements``: atom types in the order of the file;
    * ``orders``: ``{"2b", "3b", "4b"}`` polynomial orders as in the ``PAIRTYP`` line (0 when absent);
    * ``cutoffs``: per pair name, ``rmin``, ``rmax``, ``morse_lambda``, ``fcut_type``, ``fcut_var`` (Tersoff);
    * ``tiles``: sorted element sets (e.g. ``[["C"], ["C", "N"], ["N"]]``) holding at least one non-zero
      coefficient; a cluster type (``CC``, ``CCN``, ...; a non-zero energy offset for an element) belongs to
      the tile of the set of its elements;
    * ``excluded_interactions``: cluster types of the file whose coefficients are all zero or that are marked
      ``EXCLUDED:`` (2-body pairs, then 3- and 4-body types of the enabled orders, then elements whose energy
      offset is zero, when the file has offsets);
    * ``n_nonzero``: number of non-zero 2/3/4-body coefficients; ``sha256``: of the file content;
    * ``energy_offsets``: ``{element: kcal/mol}``, only when the file has an energy-offset section.
    """

    DEFAULT_FILENAME = "params.txt"
    _CLS_NODE_CACHING = ChimesPotentialDataCaching

    def __init__(self, file=None, filename: str | None = None, **kwargs):
        """``file``: a path (``*.gz`` is decompressed), a :class:`ChimesParams` or a file-like object."""
        super().__init__(file, filename=filename, **kwargs)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: ChimesParams, **kwargs) -> ChimesPotentialData:
        """Node holding ``params`` written in the official format."""
        return cls(params, **kwargs)

    @classmethod
    def from_text(cls, text: str, **kwargs) -> ChimesPotentialData:
        """Node holding the text of a parameter file."""
        return cls(io.BytesIO(text.encode()), **kwargs)

    @classmethod
    def get_or_create(cls, file, store: bool = True, **kwargs) -> ChimesPotentialData:
        """The stored node with the same content (sha256) if there is one, else a new node (stored if ``store``)."""
        node = cls(file, **kwargs)
        existing = (orm.QueryBuilder().append(cls, subclassing=False, filters={"attributes.sha256": node.sha256})
                    .order_by({cls: {"id": "asc"}}).first(flat=True))
        if existing is not None:
            return existing
        return node.store() if store else node

    def set_file(self, file, filename: str | None = None) -> None:
        """Validate the content (errors name the file and line), store it as ``params.txt``, set the attributes."""
        if filename not in (None, self.DEFAULT_FILENAME):
            raise ValueError(f"a ChimesPotentialData file is always named {self.DEFAULT_FILENAME!r}, not {filename!r}")
        if isinstance(file, ChimesParams):
            content, name = format_params(file).encode(), file.source
        else:
            content, name = _read_source(file)
        try:
            text = content.decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: not a text file (byte {exc.start} is not UTF-8): is it compressed? "
                             "Name gzip files *.gz") from exc
        summary = _summary(parse_params(text, name))
        super().set_file(io.BytesIO(content), filename=self.DEFAULT_FILENAME)
        self.base.attributes.delete_many([k for k in ("energy_offsets",) if k in self.base.attributes.keys()])
        self.base.attributes.set_many({**summary, "sha256": hashlib.sha256(content).hexdigest()})

    def _validate(self):
        if self.base.attributes.get("filename", None) != self.DEFAULT_FILENAME or self.sha256 is None:
            raise exceptions.ValidationError("a ChimesPotentialData needs a parameter file: pass one when building it")
        super()._validate()

    # -- attributes ---------------------------------------------------------------------------------------
    @property
    def elements(self) -> list[str]:
        return self.base.attributes.get("elements")

    @property
    def orders(self) -> dict:
        return self.base.attributes.get("orders")

    @property
    def cutoffs(self) -> dict:
        return self.base.attributes.get("cutoffs")

    @property
    def tiles(self) -> list[list[str]]:
        return self.base.attributes.get("tiles")

    @property
    def excluded_interactions(self) -> list[str]:
        return self.base.attributes.get("excluded_interactions")

    @property
    def n_nonzero(self) -> int:
        return self.base.attributes.get("n_nonzero")

    @property
    def sha256(self) -> str | None:
        return self.base.attributes.get("sha256", None)

    @property
    def energy_offsets(self) -> dict | None:
        return self.base.attributes.get("energy_offsets", None)

    # -- content ------------------------------------------------------------------------------------------
    def get_params(self) -> ChimesParams:
        """The parsed parameter file."""
        name = f"{type(self).__name__}<{self.pk if self.is_stored else 'unstored'}>:{self.DEFAULT_FILENAME}"
        return parse_params(self.get_content("r"), name)

    def get_calculator(self, **kwargs):
        """An ASE :class:`~aiida_chimes.chimes.calculator.ChimesCalculator` for this potential (kwargs passed on)."""
        from aiida_chimes.chimes.calculator import ChimesCalculator

        return ChimesCalculator(self.get_params(), **kwargs)

    def export(self, path, overwrite: bool = False) -> pathlib.Path:
        """Write the parameter file, byte for byte, to ``path``."""
        path = pathlib.Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists already: choose another name or pass overwrite=True")
        path.write_bytes(self.content)
        return path
