"""Stand-in for swinunetr/scripts/algo.py: fills hyper_parameters.yaml (see stand_in.StandInAlgo)."""

from .stand_in import StandInAlgo


class SwinunetrAlgo(StandInAlgo):
    pass
