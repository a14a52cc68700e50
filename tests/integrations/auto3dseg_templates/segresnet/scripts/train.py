"""Stand-in for segresnet/scripts/train.py of Project-MONAI/research-contributions auto3dseg/algorithm_templates at
21ed8e57c7256834d4fbaf19579ca25ad3d135ee. The config is resolved and the loss built as there: ``run`` ->
``segmenter.run_segmenter`` -> ``run_segmenter_worker`` (splits a comma-separated ``config_file``) ->
``Segmenter.__init__``, whose ``parse_input_config`` merges the files in the order given
(``ConfigParser.load_config_files``), lays the command-line overrides over them, resolves every top-level
component's references, and whose loss is ``DeepSupervisionLoss(ConfigParser(config["loss"]).get_parsed_content())``
(a parser of the loss entry alone: no ``imports``). Then one epoch of the (small) SegResNetDS of the config.
"""

import copy

import fire
from monai.bundle import ConfigParser
from monai.losses import DeepSupervisionLoss


def parse_input_config(config_file, **override):
    """segmenter.py ``Segmenter.parse_input_config``: the steps that decide the loss and the values trained with."""
    if isinstance(config_file, str) and "," in config_file:  # run_segmenter_worker
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


def run(config_file, **override):
    from stand_in import train_and_record

    config = parse_input_config(config_file, **override)
    network = ConfigParser(config["network"]).get_parsed_content()
    levels = config["network"]["dsdepth"]
    train_and_record(config, network, build_loss(config), config["ckpt_path"], "loss_record.json", levels)


if __name__ == "__main__":
    fire.Fire()
