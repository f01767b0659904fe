"""Scan planning from segmented, labelled discs (LVP module 4): slice groups, slabs, bands, quality."""
