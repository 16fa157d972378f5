"""The tasks talkface knows, as one declarative table: name, label, description, default score
range, direction, which inputs may move the score, and its weight in the overall combination.

Everything else derives from `TASK_TABLE`: the default task names (`TASKS`), the tasks judged
from the picture alone (`VISUAL_TASKS`), the weights of `talkface.measures.combine_overall`
(`OVERALL_WEIGHTS`) and the `TaskSpec`s a dataset's task columns become (`talkface.spec.make_task`).
A manifest may name other tasks; they get the defaults of `TaskRow` (range [0, 1], higher is
better, audio-visual inputs, no part in the overall combination).

This module imports nothing from talkface, so every layer (constants, spec, measures, models)
can read it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

OVERALL = "overall"  # the task the overall combination predicts


@dataclass(frozen=True)
class TaskRow:
    """One row of the task table. `inputs`: "visual" for a task that must not depend on the
    audio (a model reads only visual features for it), "audiovisual" otherwise.
    `overall_weight`: the task's exponent in the weighted geometric mean that is the overall
    score (None: not one of its aspects)."""

    name: str
    label: str
    description: str = ""
    low: float = 0.0
    high: float = 1.0
    higher_is_better: bool = True
    inputs: Literal["visual", "audiovisual"] = "audiovisual"
    overall_weight: Optional[float] = None


TASK_TABLE: tuple[TaskRow, ...] = (
    TaskRow("lip_sync", "Lip sync", "Do the lips move with the speech, at the right time?",
            inputs="audiovisual", overall_weight=0.4),
    TaskRow("visual_quality", "Visual quality",
            "Is the face sharp and free of noise and compression?",
            inputs="visual", overall_weight=0.3),
    TaskRow("temporal_quality", "Temporal quality",
            "Is motion smooth: no shake, freezes or flicker?",
            inputs="visual", overall_weight=0.3),
    TaskRow(OVERALL, "Overall", "How good is the clip as a whole?", inputs="audiovisual"),
)

TASKS = tuple(row.name for row in TASK_TABLE)
VISUAL_TASKS = tuple(row.name for row in TASK_TABLE if row.inputs == "visual")
OVERALL_WEIGHTS = {row.name: row.overall_weight for row in TASK_TABLE
                   if row.overall_weight is not None}


def task_row(name: str) -> TaskRow:
    """The table's row for `name`; a task the table does not know gets the defaults, labelled
    from its name."""
    known = {row.name: row for row in TASK_TABLE}
    return known.get(name) or TaskRow(name, name.replace("_", " ").capitalize())
