"""Reading and writing volumes with their LPS geometry.

Arrays in the pure core are indexed (i, j, k) like the voxel indices of the file; SimpleITK arrays are (k, j, i),
so the transposition lives here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .nifti_check import check_nifti_data, is_nifti


@dataclass
class Volume:
    """A voxel array with its world geometry (LPS mm)."""

    array: np.ndarray  # indexed (i, j, k)
    spacing: tuple[float, float, float]
    origin: np.ndarray
    direction: np.ndarray  # columns: world direction of i, j, k

    def index_to_world(self, ijk: np.ndarray) -> np.ndarray:
        return self.origin + (np.asarray(ijk, dtype=float) * np.asarray(self.spacing)) @ self.direction.T

    def world_to_index(self, xyz: np.ndarray) -> np.ndarray:
        return ((np.asarray(xyz, dtype=float) - self.origin) @ self.direction) / np.asarray(self.spacing)

    def same_grid(self, other: Volume, tol: float = 1e-3) -> bool:
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )


def to_sitk(volume: Volume) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in volume.spacing])
    image.SetOrigin([float(x) for x in volume.origin])
    image.SetDirection([float(x) for x in np.asarray(volume.direction).ravel()])
    return image


def from_sitk(image: sitk.Image) -> Volume:
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    return Volume(array, tuple(image.GetSpacing()), np.array(image.GetOrigin(), dtype=float), direction)


def write_volume(volume: Volume, path: str | Path) -> None:
    sitk.WriteImage(to_sitk(volume), str(path), useCompression=True)


def read_volume(path: str | Path, series_uid: str | None = None) -> Volume:
    """Read a 3D volume (NIfTI, NRRD, MHA, ...; a DICOM folder: its one or its only sagittal series, or
    `series_uid`) or fail with a message naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        return _checked_axes(_read_dicom_series(path, series_uid), path)
    if is_nifti(path):
        check_nifti_data(path)  # ITK reads a cut-off file as zeros and NaN as 0
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot be read as an image ({str(err).strip().splitlines()[-1]})") from err
    if image.GetDimension() == 2 or (image.GetDimension() == 3 and min(image.GetSize()) == 1):
        raise ValueError(f"{path}: is a single 2D slice {image.GetSize()}; a 3D volume is needed")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected 1")
    return _checked_axes(from_sitk(image), path)


ORTHOGONALITY_TOLERANCE = 1e-3


def _checked_axes(volume: Volume, path: Path) -> Volume:
    """Refuse a sheared (non-orthogonal) voxel grid: every output would be written on another grid."""
    d = np.asarray(volume.direction, dtype=float)
    if np.abs(d.T @ d - np.eye(3)).max() > ORTHOGONALITY_TOLERANCE:
        raise ValueError(
            f"{path}: its voxel axes are not orthogonal (a sheared grid); resample it onto an orthogonal grid "
            "(e.g. in 3D Slicer: Resample Scalar Volume) first"
        )
    return volume


def _read_dicom_series(folder: Path, series_uid: str | None = None) -> Volume:
    from .dicom_series import read_dicom_series

    return from_sitk(read_dicom_series(folder, series_uid))
