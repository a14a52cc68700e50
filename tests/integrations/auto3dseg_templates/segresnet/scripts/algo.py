"""Stand-in for segresnet/scripts/algo.py: fills hyper_parameters.yaml (see stand_in.StandInAlgo)."""

from .stand_in import StandInAlgo


class SegresnetAlgo(StandInAlgo):
    pass
