"""Stand-in for segresnet2d/scripts/train.py of Project-MONAI/research-contributions auto3dseg/algorithm_templates at
21ed8e57c7256834d4fbaf19579ca25ad3d135ee. The config is resolved and the loss built as there: ``run`` ->
``segmenter_2d.run_segmenter`` -> ``run_segmenter_worker`` (splits a comma-separated ``config_file``) ->
``Segmenter2D``, a subclass of its own ``segmenter.py`` ``Segmenter``, whose ``parse_input_config`` merges the files
in the order given, lays the command-line overrides over them and resolves every top-level component's
references; its loss is ``DeepSupervisionLoss(ConfigParser(config["loss"]).get_parsed_content())`` (no
``imports``), called on the 2D network's outputs reshaped back to ``(B, C, H, W, D)`` (``WrappedModel2D``).
"""

import copy

import fire
import torch
from monai.bundle import ConfigParser
from monai.losses import DeepSupervisionLoss


def parse_input_config(config_file, **override):
    """segresnet2d's segmenter.py ``Segmenter.parse_input_config``: the steps that decide the loss and values."""
    if isinstance(config_file, str) and "," in config_file:  # segmenter_2d.py run_segmenter_worker
        config_file = config_file.split(",")
    config = ConfigParser.load_config_files(config_file)
    parser = ConfigParser(config=config)
    parser.update(pairs=override)
    config = parser.config
    config.setdefault("loss", None)
    config.setdefault("sigmoid", False)
    for k, v in config.items():  # "resolve content"
        if isinstance(v, dict) and "_target_" in v:
            config[k] = parser.get_parsed_content(k, instantiate=False).config
        elif "_target_" in str(v):
            config[k] = copy.deepcopy(v)
        else:
            config[k] = parser.get_parsed_content(k)
    return config


def build_loss(config):
    """``Segmenter.__init__``: the loss of the resolved config, wrapped for the network's deep-supervision outputs."""
    return DeepSupervisionLoss(ConfigParser(config["loss"]).get_parsed_content(instantiate=True))


class WrappedModel2D(torch.nn.Module):
    """segmenter_2d.py ``WrappedModel2D``: the 2D network on every axial slice, outputs back in 3D layout."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        sh = x.shape
        x = self.net(x.permute(0, 4, 1, 2, 3).reshape(-1, sh[1], sh[2], sh[3]))
        outputs = x if isinstance(x, (list, tuple)) else [x]
        outputs = [o.reshape(sh[0], sh[4], *o.shape[1:]).permute(0, 2, 3, 4, 1) for o in outputs]
        return outputs if isinstance(x, (list, tuple)) else outputs[0]


def run(config_file, **override):
    from stand_in import train_and_record

    config = parse_input_config(config_file, **override)
    network = WrappedModel2D(ConfigParser(config["network"]).get_parsed_content())
    levels = config["network"]["dsdepth"]
    train_and_record(config, network, build_loss(config), config["ckpt_path"], "loss_record.json", levels, halved=2)


if __name__ == "__main__":
    fire.Fire()
