"""Stand-in for dints/scripts/train.py of Project-MONAI/research-contributions auto3dseg/algorithm_templates at
21ed8e57c7256834d4fbaf19579ca25ad3d135ee. The config is resolved and the loss built as there (``run``): every config
file in the order given (``parser.read_config``), the command-line overrides, then, for a fine-tuning run,
``finetune#overwrite`` laid over ``training``; the loss is ``parser.get_parsed_content("training#loss")``. Then one
epoch of the (small) network on the CPU (the official script runs on ``cuda:0`` only).
"""

import fire
from monai.bundle import ConfigParser
from monai.bundle.scripts import _pop_args, _update_args


def resolve_config(config_file, **override):
    """train.py ``run``: the parser its training reads every value from (``pre_operation``'s GPU auto-scaling,
    which rewrites hyper_parameters.yaml with every key kept, is off in the stand-in)."""
    if isinstance(config_file, str) and "," in config_file:
        config_file = config_file.split(",")
    _args = _update_args(config_file=config_file, **override)
    config_file_ = _pop_args(_args, "config_file")[0]
    parser = ConfigParser()
    parser.read_config(config_file_)
    parser.update(pairs=_args)
    if parser["finetune"]["activate_finetune"] and "overwrite" in parser["finetune"]:
        parser["training"].update(parser["finetune"]["overwrite"])
        parser["finetune"].pop("overwrite")
    return parser


def build_loss(parser):
    """train.py ``run``: ``loss_function = parser.get_parsed_content("training#loss")``."""
    return parser.get_parsed_content("training#loss")


def run(config_file, **override):
    from stand_in import train_and_record

    parser = resolve_config(config_file, **override)
    values = {key: parser.get_parsed_content(key) for key in ("data_file_base_dir", "data_list_file_path", "fold")}
    values.update({key: parser.get_parsed_content(f"training#{key}") for key in ("output_classes", "learning_rate")})
    network = parser.get_parsed_content("training_network#network")
    train_and_record(values, network, build_loss(parser), parser.get_parsed_content("ckpt_path"), "loss_record.json")


if __name__ == "__main__":
    fire.Fire()
