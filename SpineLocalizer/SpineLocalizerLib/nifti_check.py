"""Checks of a NIfTI file's voxel data that the image reader does not make: ITK reads a truncated `.nii.gz` as
zeros past the break and turns NaN and infinite voxels into 0, so a damaged file or a failed reconstruction
would be planned on as if it were fine. Both are found here by streaming the raw data once (a few MB at a time)
against what the header promises (NIfTI-1 and NIfTI-2 headers, either byte order)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

# NIfTI datatype code -> numpy dtype (the codes of nifti1.h)
DATATYPES = {
    2: "u1",
    4: "i2",
    8: "i4",
    16: "f4",
    32: "c8",
    64: "f8",
    128: "u1",  # RGB24, 3 bytes per voxel: counted as bytes
    256: "i1",
    512: "u2",
    768: "u4",
    1024: "i8",
    1280: "u8",
    1792: "c16",
    2304: "u1",  # RGBA32, counted as bytes
}
BYTES_PER_VOXEL = {128: 3, 2304: 4}
CHUNK_BYTES = 1 << 22


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _header(raw: bytes, path: Path) -> tuple[str, tuple[int, ...], int, int]:
    """(byte order, dims, datatype, data offset) from the first 540 bytes."""
    for order in ("<", ">"):
        size = struct.unpack(order + "i", raw[:4])[0]
        if size == 348:
            dims = struct.unpack(order + "8h", raw[40:56])
            datatype = struct.unpack(order + "h", raw[70:72])[0]
            offset = int(struct.unpack(order + "f", raw[108:112])[0])
            return order, tuple(int(d) for d in dims[1 : 1 + max(0, min(int(dims[0]), 7))]), datatype, max(offset, 352)
        if size == 540:
            datatype = struct.unpack(order + "h", raw[12:14])[0]
            dims = struct.unpack(order + "8q", raw[16:80])
            offset = int(struct.unpack(order + "q", raw[168:176])[0])
            return order, tuple(int(d) for d in dims[1 : 1 + max(0, min(int(dims[0]), 7))]), datatype, max(offset, 544)
    raise ValueError(f"{path}: not a NIfTI file (header size is neither 348 nor 540)")


def check_nifti_data(path: str | Path) -> None:
    """Raise ValueError, naming the file and what to do, when its voxel data end early, its compression is
    damaged, or it holds NaN or infinite values; return quietly for a whole, finite file."""
    path = Path(path)
    try:
        with _open(path) as fh:
            head = fh.read(544)
            order, dims, datatype, offset = _header(head, path)
            if datatype not in DATATYPES:
                return  # an unusual type: left to the reader
            dtype = np.dtype(order + DATATYPES[datatype]) if DATATYPES[datatype] != "u1" else np.dtype("u1")
            per_voxel = BYTES_PER_VOXEL.get(datatype, dtype.itemsize)
            expected = int(np.prod([max(d, 1) for d in dims])) * per_voxel
            if offset > len(head):
                fh.read(offset - len(head))  # extensions between the header and the data
            block = head[offset:]
            got, finite, carry = 0, True, b""
            floating = dtype.kind in "fc"
            while got < expected:
                block = block or fh.read(min(CHUNK_BYTES, expected - got))
                if not block:
                    break
                block = block[: expected - got]
                got += len(block)
                if floating:  # whole elements only; a split one waits for the next block
                    data, block = carry + block, b""
                    usable = len(data) - len(data) % dtype.itemsize
                    finite = finite and bool(np.isfinite(np.frombuffer(data[:usable], dtype=dtype)).all())
                    carry = data[usable:]
                block = b""
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(
            f"{path}: the file is damaged ({err}); copy or export it again from the scanner or PACS"
        ) from err
    if got < expected:
        raise ValueError(
            f"{path}: the file ends early ({got} of {expected} bytes of voxel data): it was cut off while copying "
            "or writing; copy or export it again"
        )
    if not finite:
        raise ValueError(f"{path}: the image contains NaN or infinite values; fix or mask them before planning")
