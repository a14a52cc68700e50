"""Runs over many files (evaluation, inference) that skip the cases they cannot use instead of stopping mid-way.

Before the loop, :class:`SkippedCases` runs the data check of ``monai_nacl.data.check_cases`` on every case:
each file is read whole with nibabel, as the loader will read it, so a missing, truncated or non-NIfTI file is
found there, as are the other problems the check knows (a constant or non-finite image, labels outside
``[0, num_classes)``, a label off the image grid). A case with a problem is dropped, with one log line per problem
(case, file, problem, value, fix); the other cases run and their outputs are written; the bundle's last step,
:meth:`SkippedCases.raise_if_any`, then fails the run with the list, so a script sees a non-zero exit status.

What it does not cover: a file that changes on disk after the check, or a transform that fails on a file the
check read; such a case still stops the run where it happens.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monai_nacl.data.checks import DataProblem, check_cases
from monai_nacl.data.files import case_id, first_image
from monai_nacl.utils import as_flag, is_rank_zero

__all__ = ["SkippedCase", "SkippedCases"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedCase:
    """A case left out of a run.

    Attributes:
        case: the case name, its image file name without the NIfTI extension (as in ``metrics.csv``).
        problems: what the data check found, each with its file, value and fix.
    """

    case: str
    problems: tuple[DataProblem, ...]


def _case_name(item: Any) -> str:
    first = first_image(item)
    return case_id(first) if isinstance(first, str) and first else repr(item)[:80]


class SkippedCases:
    """Drop the cases the data check rejects before a run over many files; fail the run at its end if any was.

    In a bundle config::

        skipped_cases:
          _target_: monai_nacl.data.SkippedCases
          num_classes: "@num_classes"
          section: test
          enabled: "@check_data"
        validate#dataset#data: $@skipped_cases.usable(monai.data.load_decathlon_datalist(...))
        finalize:
          - $@skipped_cases.raise_if_any()

    Every process of a distributed run checks the whole list, so that all drop the same cases and the
    ``DistributedSampler`` shares out the same list; only rank 0 logs.

    Args:
        num_classes: number of classes including background (label values are checked against it).
        section: name of the list in the messages (``"test"``, ``"inputs"``).
        enabled: ``False`` (``--check_data false``) passes every case on unchecked: a file that cannot be read
            then stops the run when the loader reaches it.
        in_channels: image channels per case the network takes (the trained task's; ``None``: any number).
    """

    def __init__(
        self, num_classes: int, section: str = "cases", enabled: bool | str = True, in_channels: int | None = 1
    ) -> None:
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.section = section
        self.enabled = as_flag(enabled, "check_data")
        self.skipped: list[SkippedCase] = []

    def usable(self, cases: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The cases the data check accepts, in their order; each rejected one is logged and remembered.

        Args:
            cases: ``[{"image": path, "label": path}, ...]`` (``label`` optional), paths absolute or relative
                to the working directory, e.g. from ``monai.data.load_decathlon_datalist``.

        Raises:
            ValueError: when the check rejects every case (there is nothing to run), listing them.
        """
        cases = list(cases)
        if not self.enabled or not cases:
            return cases
        kept = []
        rejected: list[SkippedCase] = []
        for item, problems in zip(
            cases, check_cases(cases, self.num_classes, section=self.section, in_channels=self.in_channels)
        ):
            if not problems:
                kept.append(item)
                continue
            rejected.append(SkippedCase(_case_name(item), tuple(problems)))
            if is_rank_zero():
                for problem in problems:
                    logger.warning("skipping %s", problem)
        self.skipped += rejected
        if not kept:
            raise ValueError(
                f"the data check rejected every one of the {len(cases)} case(s) of the {self.section} list, so "
                f"there is nothing to run:\n{self.report(rejected)}\nFix the files, or check --datalist, "
                "--dataset_dir, --input_dir and --num_classes."
            )
        return kept

    def report(self, skipped: Sequence[SkippedCase] | None = None) -> str:
        """One line per problem of the skipped cases: ``  - <case>: <file>: <problem>: <value>; fix: <fix>``."""
        skipped = self.skipped if skipped is None else skipped
        return "\n".join(f"  - {problem}" for case in skipped for problem in case.problems)

    def records(self) -> list[dict[str, Any]]:
        """The skipped cases as JSON-ready dictionaries: ``[{"case": name, "problems": [{...}, ...]}, ...]``."""
        return [
            {"case": case.case, "problems": [dataclasses.asdict(problem) for problem in case.problems]}
            for case in self.skipped
        ]

    def raise_if_any(self) -> None:
        """Fail the run if a case was skipped; call it last, once the other cases' outputs are written.

        Raises:
            ValueError: naming each skipped case with its problems and fixes.
        """
        if self.skipped:
            names = ", ".join(case.case for case in self.skipped)
            raise ValueError(
                f"{len(self.skipped)} case(s) of the {self.section} list were skipped ({names}); every other case "
                f"ran and its outputs are written. The data check found:\n{self.report()}\nFix or re-export these "
                "files (or remove the cases from the list) and run again."
            )
