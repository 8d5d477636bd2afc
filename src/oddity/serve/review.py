"""Threshold recalibration from the operators' reviews.

Normal evidence is what the plant has learned to be normal: inspections reviewed as false
alarms, plus inspections the model labelled normal that no review disputes. The proposed
threshold is the split-conformal quantile of those scores at the target false-positive rate
(`oddity.core.thresholds.calibrate_threshold`), so a new normal part exceeds it with at most
that probability as far as the evidence is exchangeable with future parts. The proposal also
says what it would change on the reviewed data: false alarms that would stay alarms and
confirmed defects that would be missed. Unreviewed normals were labelled at the threshold of
their time, so a stream with many missed defects biases the evidence; reviews correct that.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from oddity.core.thresholds import calibrate_threshold
from oddity.serve.errors import Refusal


@dataclass(frozen=True)
class Proposal:
    """A proposed threshold and what it rests on."""

    value: float
    target_fpr: float
    expected_fpr: float
    n_normal: int
    n_false_alarms: int
    n_confirmed_defects: int
    false_alarms_still_flagged: int
    confirmed_defects_missed: int

    def to_dict(self) -> dict:
        """The proposal as a JSON-ready dict of its fields.

        Returns
        -------
        dict
        """
        return asdict(self)


def propose_threshold(evidence: dict[str, list[float]], target_fpr: float) -> Proposal:
    """A threshold from reviewed scores (see module docstring).

    Parameters
    ----------
    evidence : dict
        Scores under `false_alarm`, `normal` and `confirmed_defect`
        (`InspectionStore.reviewed_scores`).
    target_fpr : float
        False-positive rate to calibrate for, in (0, 1).

    Returns
    -------
    Proposal

    Raises
    ------
    Refusal
        422 for a target rate outside (0, 1); 409 when there is no normal evidence yet.
    """
    if not 0.0 < target_fpr < 1.0:
        raise Refusal(422, "bad_target_fpr", f"target_fpr: must lie in (0, 1), got {target_fpr}")
    false_alarms = np.asarray(evidence["false_alarm"], np.float64)
    normal = np.concatenate([false_alarms, np.asarray(evidence["normal"], np.float64)])
    defects = np.asarray(evidence["confirmed_defect"], np.float64)
    if normal.size == 0:
        raise Refusal(409, "no_evidence", "no normal evidence yet: review some inspections (mark "
                      "false alarms) or score normal parts before recalibrating")
    threshold = calibrate_threshold(normal, target_fpr)
    return Proposal(value=threshold.value, target_fpr=target_fpr, expected_fpr=threshold.achievable_fpr,
                    n_normal=int(normal.size), n_false_alarms=int(false_alarms.size),
                    n_confirmed_defects=int(defects.size),
                    false_alarms_still_flagged=int((false_alarms > threshold.value).sum()),
                    confirmed_defects_missed=int((defects <= threshold.value).sum()))
