"""Stand-in for segresnet2d/scripts/algo.py: fills hyper_parameters.yaml (see stand_in.StandInAlgo)."""

from .stand_in import StandInAlgo


class Segresnet2dAlgo(StandInAlgo):
    pass
