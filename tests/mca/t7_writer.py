"""A small writer of the real Torch7 binary serialisation (torch.File / torch.save, binary mode).

Used by the tests to make ``.t7`` fixtures with the released graph's module classes, so the
converter is tested on the format itself rather than on a stand-in.  Layout (little endian):
an object is an int32 type tag (0 nil, 1 number as float64, 2 string as int32 length + bytes,
3 table, 4 torch object, 5 boolean as int32); tables and torch objects then carry an int32
reference index (a second occurrence is just the index), tables an int32 entry count and the
key/value objects, torch objects the version string "V 1" and the class name, then either the
tensor/storage body or their fields as a table.  A tensor body is int32 ndim, int64 sizes,
int64 strides, int64 1-based storage offset, then its storage object; a storage body is an
int64 element count and the raw elements.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np


@dataclass(eq=False)
class Storage:
    data: np.ndarray  # 1-D float32


@dataclass(eq=False)
class Tensor:
    storage: Storage
    shape: tuple[int, ...]
    offset: int = 0  # elements, 0-based

    @classmethod
    def of(cls, a: np.ndarray) -> "Tensor":
        a = np.ascontiguousarray(a, np.float32)
        return cls(Storage(a.reshape(-1).copy()), a.shape)


@dataclass(eq=False)
class Obj:
    """A Torch class instance (nn.SpatialConvolution, nn.gModule, nngraph.Node ...) with its fields.

    ``version`` is the class's serialisation version (``"V 3"`` for cunn's DataParallelTable), and
    ``prelude`` holds objects a class's own ``__write`` puts before the field table (DataParallelTable
    writes its ``gpuAssignments`` there).
    """

    cls: str
    fields: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    prelude: list[Any] = field(default_factory=list)


class T7Writer:
    def __init__(self, f: BinaryIO) -> None:
        self.f, self.memo = f, {}

    def _i(self, v: int) -> None:
        self.f.write(struct.pack("<i", v))

    def _q(self, v: int) -> None:
        self.f.write(struct.pack("<q", v))

    def _s(self, s: str) -> None:
        b = s.encode()
        self._i(len(b))
        self.f.write(b)

    def _ref(self, o: object) -> bool:
        """Write the reference index; True if the object was written before (nothing more to write)."""
        if id(o) in self.memo:
            self._i(self.memo[id(o)])
            return True
        self.memo[id(o)] = len(self.memo) + 1
        self._i(self.memo[id(o)])
        return False

    def write(self, o: Any) -> None:
        if o is None:
            self._i(0)
        elif isinstance(o, bool):
            self._i(5)
            self._i(int(o))
        elif isinstance(o, (int, float)):
            self._i(1)
            self.f.write(struct.pack("<d", float(o)))
        elif isinstance(o, str):
            self._i(2)
            self._s(o)
        elif isinstance(o, (Tensor, Storage, Obj)):
            self._i(4)
            if self._ref(o):
                return
            self._s(f"V {o.version if isinstance(o, Obj) else 1}")
            if isinstance(o, Tensor):
                self._s("torch.FloatTensor")
                self._i(len(o.shape))
                strides = [int(np.prod(o.shape[i + 1:])) for i in range(len(o.shape))]
                for v in o.shape:
                    self._q(v)
                for v in strides:
                    self._q(v)
                self._q(o.offset + 1)
                self.write(o.storage)
            elif isinstance(o, Storage):
                self._s("torch.FloatStorage")
                self._q(o.data.size)
                self.f.write(o.data.astype("<f4").tobytes())
            else:
                self._s(o.cls)
                for x in o.prelude:
                    self.write(x)
                self.write(o.fields)
        elif isinstance(o, (dict, list)):
            self._i(3)
            if self._ref(o):
                return
            items = list(o.items()) if isinstance(o, dict) else [(i + 1, v) for i, v in enumerate(o)]
            self._i(len(items))
            for k, v in items:
                self.write(k)
                self.write(v)
        else:
            raise TypeError(f"cannot write {type(o).__name__}")


def save(path, obj: Any) -> None:  # noqa: ANN001
    with open(path, "wb") as f:
        T7Writer(f).write(obj)
