"""ReliabilityDiagramHandler names the per-class panels by the task's classes, in a real (tiny) evaluator run."""

from __future__ import annotations

import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.transforms import Activationsd

from monai_nacl.handlers import CalibrationMetricHandler, ReliabilityDiagramHandler


class _Writer:
    """A SummaryWriter's add_figure, keeping the figures."""

    def __init__(self) -> None:
        self.figures: dict[tuple[str, int], object] = {}

    def add_figure(self, tag: str, figure: object, global_step: int) -> None:
        self.figures[(tag, global_step)] = figure


def test_classwise_diagram_of_each_round_names_the_classes(tmp_path):
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(2):
        image = torch.randn(1, 8, 8, 6, generator=g)
        items.append({"image": image, "label": (image > 0.3).long() + (image > 1.2).long()})
    net = torch.nn.Conv3d(1, 3, kernel_size=3, padding=1)
    writer = _Writer()
    handler = ReliabilityDiagramHandler(
        tmp_path, tag="classes", summary_writer=writer, classwise=True, class_names=["background", "grey", "white"]
    )
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(items), batch_size=2),
        network=net,
        postprocessing=Activationsd(keys="pred", softmax=True),
        key_val_metric={"val_ece": CalibrationMetricHandler(output_transform=from_engine(["pred", "label"]))},
        val_handlers=[handler],
    )
    evaluator.run(global_epoch=3)
    assert [path.name for path in handler.saved] == ["classes_epoch0003.png"]
    figure = writer.figures[("classes", 3)]
    titles = [ax.get_title().split(":")[0] for ax in figure.axes if ax.get_title()]
    assert titles == ["grey", "white"]  # the foreground region holds no background voxel: no panel for it
    text = figure.get_suptitle().replace("\n", " ")
    assert "CECE: mean of the ECE of all 3 classes (background, grey, white)" in text
    assert "not drawn: background (ECE " in text
