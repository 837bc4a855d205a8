"""Minimal GGUF v3 reader (numpy only) for the PyTorch training reference.

Reads the header, every metadata key/value (all GGUF value types, arrays
included), the tensor infos and the tensor data, and decodes the three tensor
types braid writes (docs/format.md):

  F32 (id 0)     as is
  F16 (id 1)     IEEE half, widened to float32
  BT2 (id 1024)  braid's ternary format: per row, groups of 128 weights; in each
                 group byte m (0..31) holds the codes of weights m, m+32, m+64,
                 m+96 in bits 0-1, 2-3, 4-5, 6-7, code = w + 1; then one float32
                 scale per (row, group), row-major, after all the codes.
                 Decoded to the effective weight scale * w.

Shapes are returned the way docs/format.md writes them: [rows, cols] is GGUF
dims [cols, rows] (ne0 fastest), so numpy shape = reversed(dims).

Usage as a script (prints metadata and tensor list):
    python3 scripts/reference/gguf_read.py models/chimera-tiny.gguf
"""
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
TYPE_F32, TYPE_F16, TYPE_BT2 = 0, 1, 1024
TYPE_NAMES = {TYPE_F32: "F32", TYPE_F16: "F16", TYPE_BT2: "BT2"}
BT2_GROUP = 128

# GGUF metadata value types: id -> (struct format, size) for the fixed-size scalars.
_SCALAR = {
    0: ("<B", 1),   # u8
    1: ("<b", 1),   # i8
    2: ("<H", 2),   # u16
    3: ("<h", 2),   # i16
    4: ("<I", 4),   # u32
    5: ("<i", 4),   # i32
    6: ("<f", 4),   # f32
    7: ("<?", 1),   # bool
    10: ("<Q", 8),  # u64
    11: ("<q", 8),  # i64
    12: ("<d", 8),  # f64
}
_STRING, _ARRAY = 8, 9


class GGUFError(Exception):
    pass


class _Cursor:
    """Bounds-checked little-endian reads from a bytes buffer."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError(f"truncated file: need {n} bytes at offset {self.pos}, file has {len(self.buf)}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt, size):
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self):
        return self.unpack("<I", 4)

    def u64(self):
        return self.unpack("<Q", 8)

    def string(self):
        n = self.u64()
        return bytes(self.take(n)).decode("utf-8")

    def value(self, vtype):
        if vtype in _SCALAR:
            return self.unpack(*_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.u32()
            n = self.u64()
            if item_type == _ARRAY:
                raise GGUFError("nested arrays are not supported (ggml rejects them too)")
            if item_type in _SCALAR and item_type != 7:
                fmt, size = _SCALAR[item_type]
                # bulk-decode numeric arrays (token_type can be long)
                return np.frombuffer(self.take(n * size), dtype=np.dtype(fmt)).tolist()
            return [self.value(item_type) for _ in range(n)]
        raise GGUFError(f"unknown metadata value type {vtype}")


class TensorInfo:
    def __init__(self, name, dims, ttype, offset):
        self.name = name
        self.dims = dims          # GGUF order: ne0 (fastest) first
        self.type = ttype
        self.offset = offset      # relative to the start of the data section

    @property
    def shape(self):
        """numpy / docs shape: [rows, cols] (reversed GGUF dims)."""
        return tuple(reversed(self.dims))

    def nbytes(self):
        n = int(np.prod(self.dims, dtype=np.int64))
        if self.type == TYPE_F32:
            return 4 * n
        if self.type == TYPE_F16:
            return 2 * n
        if self.type == TYPE_BT2:
            cols = self.dims[0]
            rows = n // cols
            if cols % BT2_GROUP:
                raise GGUFError(f"BT2 tensor {self.name}: cols {cols} is not a multiple of {BT2_GROUP}")
            return rows * (cols // 4) + rows * (cols // BT2_GROUP) * 4
        raise GGUFError(f"tensor {self.name}: unsupported type id {self.type}")


def decode_bt2(raw, rows, cols):
    """BT2 bytes of a [rows, cols] matrix -> (codes int8 [rows, cols] in {-1,0,1}, scales f32 [rows, cols/128])."""
    groups = cols // BT2_GROUP
    qs_bytes = rows * (cols // 4)
    qs = np.frombuffer(raw, dtype=np.uint8, count=qs_bytes).reshape(rows, groups, 32)
    # shift k selects weights 32k..32k+31 of the group: bits 2k..2k+1 of byte m is weight m + 32k
    codes = np.stack([(qs >> (2 * k)) & 3 for k in range(4)], axis=2)  # [rows, groups, 4, 32]
    if np.any(codes == 3):
        raise GGUFError("BT2: invalid code 3")
    w = (codes.astype(np.int8) - 1).reshape(rows, cols)
    scales = np.frombuffer(raw, dtype="<f4", count=rows * groups, offset=qs_bytes).reshape(rows, groups)
    return w, scales.astype(np.float32)


class GGUFFile:
    """A parsed GGUF file: .version, .metadata (dict, insertion order), .tensors (dict name -> TensorInfo)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        c = _Cursor(self.buf)
        if bytes(c.take(4)) != GGUF_MAGIC:
            raise GGUFError(f"{path}: not a GGUF file (bad magic)")
        self.version = c.u32()
        if self.version != 3:
            raise GGUFError(f"{path}: GGUF version {self.version}, need 3")
        n_tensors = c.u64()
        n_kv = c.u64()
        self.metadata = {}
        for _ in range(n_kv):
            key = c.string()
            vtype = c.u32()
            self.metadata[key] = c.value(vtype)
        self.tensors = {}
        for _ in range(n_tensors):
            name = c.string()
            n_dims = c.u32()
            dims = [c.u64() for _ in range(n_dims)]
            ttype = c.u32()
            offset = c.u64()
            if name in self.tensors:
                raise GGUFError(f"{path}: duplicate tensor {name}")
            self.tensors[name] = TensorInfo(name, dims, ttype, offset)
        align = int(self.metadata.get("general.alignment", 32))
        if align <= 0 or align & (align - 1):
            raise GGUFError(f"{path}: general.alignment {align} is not a power of two")
        self.data_start = (c.pos + align - 1) // align * align
        for t in self.tensors.values():
            end = self.data_start + t.offset + t.nbytes()
            if t.offset % align or end > len(self.buf):
                raise GGUFError(f"{path}: tensor {t.name} data [{t.offset}, +{t.nbytes()}) is misaligned or out of bounds")

    def raw(self, name):
        t = self.tensors[name]
        start = self.data_start + t.offset
        return memoryview(self.buf)[start:start + t.nbytes()]

    def bt2(self, name):
        """(codes, scales) of a 2-D BT2 tensor."""
        t = self.tensors[name]
        if t.type != TYPE_BT2 or len(t.dims) != 2:
            raise GGUFError(f"{name} is not a 2-D BT2 tensor")
        return decode_bt2(self.raw(name), t.dims[1], t.dims[0])

    def tensor(self, name):
        """float32 array of tensor `name`, shape [rows, cols] (BT2 -> scale * w; a 3-D BT2 is n stacked matrices)."""
        t = self.tensors[name]
        raw = self.raw(name)
        if t.type == TYPE_F32:
            return np.frombuffer(raw, dtype="<f4").reshape(t.shape).astype(np.float32)
        if t.type == TYPE_F16:
            return np.frombuffer(raw, dtype="<f2").reshape(t.shape).astype(np.float32)
        if t.type == TYPE_BT2:
            cols = t.dims[0]
            rows = t.dims[1] if len(t.dims) > 1 else 1
            n = int(np.prod(t.dims[2:], dtype=np.int64)) if len(t.dims) > 2 else 1
            one = rows * (cols // 4) + rows * (cols // BT2_GROUP) * 4
            mats = []
            for i in range(n):
                w, s = decode_bt2(raw[i * one:(i + 1) * one], rows, cols)
                # effective weight, in float32 like the C kernels (scale * w is exact for w in {-1,0,1})
                mats.append((np.repeat(s, BT2_GROUP, axis=1) * w).astype(np.float32))
            return np.stack(mats).reshape(t.shape) if n > 1 or len(t.dims) > 2 else mats[0].reshape(t.shape)
        raise GGUFError(f"tensor {name}: unsupported type id {t.type}")


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    g = GGUFFile(argv[1])
    print(f"GGUF v{g.version}, {len(g.metadata)} keys, {len(g.tensors)} tensors, data at {g.data_start}")
    for k, v in g.metadata.items():
        s = repr(v)
        print(f"  {k} = {s[:100] + '...' if len(s) > 100 else s}")
    for t in g.tensors.values():
        print(f"  {t.name:32s} {TYPE_NAMES.get(t.type, t.type):4s} {list(t.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
