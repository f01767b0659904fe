"""Pure computation of SpineLocalizer: phantom, planning, networks (no Slicer, Qt or VTK imports)."""
