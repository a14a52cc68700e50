"""Stand-in for dints/scripts/search.py (the architecture search) of Project-MONAI/research-contributions
auto3dseg/algorithm_templates at 21ed8e57c7256834d4fbaf19579ca25ad3d135ee. The config is resolved and the loss built
as there (``run``): every config file in the order given, then the command-line overrides; the loss is
``parser.get_parsed_content("searching#loss")``. Then one epoch of the (small) network instead of the search.
"""

import fire
from monai.bundle import ConfigParser
from monai.bundle.scripts import _pop_args, _update_args


def resolve_config(config_file, **override):
    """search.py ``run``: the parser the search reads every value from."""
    if isinstance(config_file, str) and "," in config_file:
        config_file = config_file.split(",")
    _args = _update_args(config_file=config_file, **override)
    config_file_ = _pop_args(_args, "config_file")[0]
    parser = ConfigParser()
    parser.read_config(config_file_)
    parser.update(pairs=_args)
    return parser


def build_loss(parser):
    """search.py ``run``: ``loss_function = parser.get_parsed_content("searching#loss")``."""
    return parser.get_parsed_content("searching#loss")


def run(config_file, **override):
    from stand_in import train_and_record

    parser = resolve_config(config_file, **override)
    values = {key: parser.get_parsed_content(key) for key in ("data_file_base_dir", "data_list_file_path", "fold")}
    values.update({key: parser.get_parsed_content(f"searching#{key}") for key in ("output_classes", "learning_rate")})
    network = parser.get_parsed_content("searching_network#network")
    arch_path = parser.get_parsed_content("searching#arch_path")
    train_and_record(values, network, build_loss(parser), arch_path, "search_loss_record.json")


if __name__ == "__main__":
    fire.Fire()
