"""MRML logic of SpineMeasure: the worksheet of reader landmarks and the results tables on a real scene."""
