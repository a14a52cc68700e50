"""Integrations with the wider MONAI ecosystem: calibration losses in Auto3DSeg algorithms (:mod:`.auto3dseg`).

The bundles' MONAI Label contract, TorchScript export and MLflow tracking need no code here; their tests are in
``tests/integrations``.
"""
