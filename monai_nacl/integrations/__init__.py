"""Integrations of the NACL bundles with the wider MONAI ecosystem (TorchScript export, MONAI Label)."""
