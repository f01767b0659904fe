"""Reading a localizer from a DICOM folder: the series is chosen explicitly (a folder often holds several: the
three-plane localizer, calibration scans, a previous exam), and its slices are checked, because ITK stacks
whatever it finds and a missing or duplicated slice silently shifts every slice after it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

SPACING_TOLERANCE = 0.2  # relative deviation of one slice step from the median step that counts as a gap


def series_in(folder: Path) -> list[tuple[str, list[str]]]:
    reader = sitk.ImageSeriesReader()
    return [
        (uid, list(reader.GetGDCMSeriesFileNames(str(folder), uid))) for uid in reader.GetGDCMSeriesIDs(str(folder))
    ]


def _header(path: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return reader


def _tag(reader: sitk.ImageFileReader, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def orientation_of(files: list[str]) -> str:
    """ "sagittal", "coronal" or "axial": the world axis the slice normal is closest to (L-R, A-P, S-I)."""
    cosines = [float(v) for v in _tag(_header(files[0]), "0020|0037").split("\\") if v.strip()]
    if len(cosines) != 6:
        return "unknown"
    normal = np.cross(cosines[:3], cosines[3:])
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def describe(uid: str, files: list[str]) -> str:
    head = _header(files[0])
    name = _tag(head, "0008|103e") or "no description"
    return f"{uid} ({name}, {orientation_of(files)}, {len(files)} slices)"


def choose_series(folder: Path, series_uid: str | None = None) -> tuple[str, list[str]]:
    """The series to read: the one given, the only one, or the only sagittal one; otherwise refused with the
    list of series to choose from (`--series UID`)."""
    found = series_in(folder)
    if not found:
        raise ValueError(f"{folder}: is a folder without a DICOM series; give a NIfTI/NRRD/MHA file or a DICOM folder")
    listing = "; ".join(describe(uid, files) for uid, files in found)
    if series_uid:
        for uid, files in found:
            if uid == series_uid:
                return uid, files
        raise ValueError(f"{folder}: has no series {series_uid}; it has {listing}")
    if len(found) == 1:
        return found[0]
    sagittal = [(uid, files) for uid, files in found if orientation_of(files) == "sagittal" and len(files) > 1]
    if len(sagittal) == 1:
        return sagittal[0]
    raise ValueError(f"{folder}: holds {len(found)} series; choose the localizer with --series UID: {listing}")


def check_slices(folder: Path, uid: str, files: list[str]) -> None:
    """Refuse a series whose slices are not evenly spaced (a missing, duplicated or truncated slice)."""
    positions, normal = [], None
    for path in files:
        head = _header(path)
        cosines = [float(v) for v in _tag(head, "0020|0037").split("\\") if v.strip()]
        position = [float(v) for v in _tag(head, "0020|0032").split("\\") if v.strip()]
        if len(cosines) != 6 or len(position) != 3:
            raise ValueError(f"{path}: a slice without position or orientation; export the series again")
        normal = np.cross(cosines[:3], cosines[3:]) if normal is None else normal
        positions.append(float(np.dot(position, normal)))
    steps = np.diff(np.sort(positions))
    if len(steps) == 0:
        return
    median = float(np.median(steps))
    if (
        median <= 0
        or np.any(steps < (1 - SPACING_TOLERANCE) * median)
        or np.any(steps > (1 + SPACING_TOLERANCE) * median)
    ):
        worst = float(steps[np.argmax(np.abs(steps - median))])
        raise ValueError(
            f"{folder}: series {uid} has unevenly spaced slices (a step of {worst:.2f} mm against {median:.2f} mm): "
            "a slice is missing, duplicated or damaged; export the series again"
        )


def read_dicom_series(folder: Path, series_uid: str | None = None) -> sitk.Image:
    """The chosen series (`choose_series`) as one image, after `check_slices`."""
    uid, files = choose_series(folder, series_uid)
    if len(files) < 2:
        raise ValueError(f"{folder}: DICOM series {uid} is a single 2D slice; a 3D localizer is needed")
    check_slices(folder, uid, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ValueError(f"{folder}: series {uid} cannot be read ({str(err).strip().splitlines()[-1]})") from err
    return image
