"""Stand-in for dints/scripts/algo.py: fills training#/searching# ids (see stand_in.StandInAlgo); ``train(search=True)``
runs the architecture search first, with the same command and files as the training but ``search.py``, as the
official ``DintsAlgo.train`` (research-contributions 21ed8e5) does."""

from .stand_in import StandInAlgo


class DintsAlgo(StandInAlgo):
    fill_prefixes = (("hyper_parameters.yaml", "training#"), ("hyper_parameters_search.yaml", "searching#"))

    def train(self, train_params=None, device_setting=None, search=False):
        if search:
            cmd, devices_info = self._create_cmd({})
            self._run_cmd(cmd.replace("train.py", "search.py"), devices_info)
        return super().train(train_params, device_setting)
