"""Pure computation of SpineMeasure: measurements and agreement statistics (no Slicer imports)."""
