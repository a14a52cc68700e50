"""Stand-in for swinunetr/scripts/train.py of Project-MONAI/research-contributions auto3dseg/algorithm_templates at
21ed8e57c7256834d4fbaf19579ca25ad3d135ee. The config is resolved and the loss built as there (``run``): every
config file except ``hyper_parameters.yaml`` (and hidden or ``.lock`` files) is read, then ``pre_operation``'s
parser of ``hyper_parameters.yaml`` is laid over it key by key (``parser.update(pairs=parser_hyper.config)``), then
the command-line overrides; the loss is ``parser.get_parsed_content("loss")``. So ``hyper_parameters.yaml``'s
``loss`` replaces a loss from any other file, whatever the file order. Then one epoch of the (small) network.
"""

from pathlib import Path

import fire
from monai.bundle import ConfigParser
from monai.bundle.scripts import _pop_args, _update_args
from monai.utils.misc import ensure_tuple


def pre_operation(config_file, **override):
    """train.py ``pre_operation``: the parser of (the last) ``hyper_parameters.yaml``. Its GPU-memory auto-scaling,
    which rewrites that file with every key kept, is not reproduced (the stand-in sets ``auto_scale_allowed``
    false)."""
    if isinstance(config_file, str) and "," in config_file:
        config_file = config_file.split(",")
    for _file in config_file:
        if _file.endswith("hyper_parameters.yaml"):
            parser = ConfigParser(globals=False)
            parser.read_config(_file)
            if override.get("auto_scale_allowed", parser["auto_scale_allowed"]):
                raise NotImplementedError("the stand-in does not reproduce swinunetr's GPU auto-scaling")
    return parser


def resolve_config(config_file, **override):
    """train.py ``run``: the parser its training reads every value from."""
    if isinstance(config_file, str) and "," in config_file:
        config_file = config_file.split(",")
    _args = _update_args(config_file=config_file, **override)
    config_file_ = _pop_args(_args, "config_file")[0]
    config_file_ = [
        path
        for path in ensure_tuple(config_file_)
        if not (path.endswith("hyper_parameters.yaml") or Path(path).name.startswith(".") or path.endswith(".lock"))  # noqa: PIE810 (as in train.py)
    ]
    parser = ConfigParser()
    parser.read_config(config_file_)
    parser_hyper = pre_operation(config_file, **override)
    parser.update(pairs=parser_hyper.config)
    parser.update(pairs=_args)
    return parser


def build_loss(parser):
    """train.py ``run``: ``loss_function = parser.get_parsed_content("loss")``."""
    return parser.get_parsed_content("loss")


def run(config_file, **override):
    from stand_in import train_and_record

    parser = resolve_config(config_file, **override)
    ids = ("data_file_base_dir", "data_list_file_path", "fold", "output_classes", "learning_rate")
    values = {key: parser.get_parsed_content(key) for key in ids}
    network = parser.get_parsed_content("network")
    train_and_record(values, network, build_loss(parser), parser.get_parsed_content("ckpt_path"), "loss_record.json")


if __name__ == "__main__":
    fire.Fire()
