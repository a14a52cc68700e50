"""Integrations with the wider MONAI ecosystem: calibration losses in Auto3DSeg algorithms (:mod:`.auto3dseg`), and
the trained classes written where MONAI Label reads them (:mod:`.monailabel`).

The bundles' TorchScript export and MLflow tracking need no code here; their tests, and those of the real MONAI Label
task classes on the bundles, are in ``tests/integrations``.
"""
