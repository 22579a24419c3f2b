"""``FitSystemData``: the compact fit system written by ``chimes-lsq`` (``fit_system.npz``), stored verbatim.

The system holds triangular factors and sums, never the design matrix, so it is small enough for the
repository; new frames can be folded into it later and any coefficient vector can be scored on it exactly.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

from aiida import orm
from aiida.common import exceptions

from aiida_chimes.chimes.fit_system import CLASSES, FitSystem

__all__ = ("FitSystemData",)


class FitSystemData(orm.Data):
    """A :class:`FitSystem` file. Attributes: ``ncols``, ``nrows`` (per class and ``total``), ``nframes`` (when the
    metadata has it), ``nbytes`` (file size) and ``params_header_sha256`` (when the metadata has the header)."""

    FILENAME = "fit_system.npz"

    def __init__(self, file=None, **kwargs):
        """``file``: path of a ``fit_system.npz`` written by ``chimes-lsq`` (or :meth:`FitSystem.save`)."""
        super().__init__(**kwargs)
        if file is not None:
            self.set_file(file)

    @classmethod
    def from_file(cls, path, **kwargs) -> FitSystemData:
        return cls(path, **kwargs)

    def set_file(self, path) -> None:
        """Validate ``path`` by loading it, store it as ``fit_system.npz`` and set the attributes."""
        path = os.path.abspath(os.fspath(path))
        try:
            system = FitSystem.load(path)
            content = pathlib.Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read the fit system ({exc.strerror or exc})") from exc
        except Exception as exc:  # np.load / zipfile raise several types for a file of the wrong kind
            raise ValueError(f"{path}: not a fit system written by chimes-lsq ({type(exc).__name__}: {exc})") from exc
        self.base.repository.put_object_from_bytes(content, self.FILENAME)
        nrows = system.nrows
        attributes = {
            "ncols": int(system.ncols),
            "nrows": {name: int(nrows[name]) for name in (*CLASSES, "total")},
            "nbytes": len(content),
        }
        meta = system.metadata
        if "nframes" in meta:
            attributes["nframes"] = int(meta["nframes"])
        if meta.get("params_header") is not None:
            attributes["params_header_sha256"] = hashlib.sha256(str(meta["params_header"]).encode()).hexdigest()
        for key in ("nframes", "params_header_sha256"):
            if key in self.base.attributes.keys() and key not in attributes:
                self.base.attributes.delete(key)
        self.base.attributes.set_many(attributes)

    def _validate(self):
        super()._validate()
        if self.FILENAME not in self.base.repository.list_object_names():
            raise exceptions.ValidationError(f"a FitSystemData needs its {self.FILENAME}: pass a file to from_file")

    # -- attributes ---------------------------------------------------------------------------------------
    @property
    def ncols(self) -> int:
        return self.base.attributes.get("ncols")

    @property
    def nrows(self) -> dict:
        return self.base.attributes.get("nrows")

    @property
    def nframes(self) -> int | None:
        return self.base.attributes.get("nframes", None)

    @property
    def nbytes(self) -> int:
        return self.base.attributes.get("nbytes")

    @property
    def params_header_sha256(self) -> str | None:
        return self.base.attributes.get("params_header_sha256", None)

    # -- content ------------------------------------------------------------------------------------------
    def get_fit_system(self) -> FitSystem:
        """Load the stored system (through a temporary copy of the file)."""
        with self.base.repository.as_path(self.FILENAME) as path:
            return FitSystem.load(path)

    def export(self, path, overwrite: bool = False) -> pathlib.Path:
        """Write ``fit_system.npz``, byte for byte, to ``path``."""
        path = pathlib.Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists already: choose another name or pass overwrite=True")
        path.write_bytes(self.base.repository.get_object_content(self.FILENAME, mode="rb"))
        return path
