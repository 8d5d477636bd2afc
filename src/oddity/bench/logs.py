"""Logs benchmark pieces: the Loghub-2k format strings and parsing accuracy (grouping accuracy).

Grouping accuracy (Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP
2019): a line counts as correct when the set of lines parsed into its template is exactly the
set of lines of its ground-truth template; the accuracy is the share of correct lines. Parsed
groups are keyed by the final template text, as in logparser (identical templates are one event).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Hashable, Mapping

# Loghub-2k format strings (those of the logparser benchmark).
LOGHUB_FORMATS: dict[str, str] = {
    "HDFS": "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "Spark": "<Date> <Time> <Level> <Component>: <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    "BGL": "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    "HPC": "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Thunderbird": r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> "
                   r"<Component>(\[<PID>\])?: <Content>",
    "Windows": "<Date> <Time>, <Level>                  <Component>    <Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "Android": "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    "HealthApp": r"<Time>\|<Component>\|<Pid>\|<Content>",
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "Mac": r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
}


def grouping_accuracy(truth: Mapping[Hashable, Hashable], parsed: Mapping[Hashable, Hashable]) -> float:
    """Share of lines whose parsed group equals their true group exactly (keys: line ids,
    values: true / parsed template; only lines present in both count).

    Parameters
    ----------
    truth : mapping
        Line id -> ground-truth template (or event id).
    parsed : mapping
        Line id -> parsed template.

    Returns
    -------
    float
        Grouping accuracy in [0, 1].
    """
    keys = [k for k in truth if k in parsed]
    true_groups: dict[Hashable, set] = defaultdict(set)
    parsed_groups: dict[Hashable, set] = defaultdict(set)
    for k in keys:
        true_groups[truth[k]].add(k)
        parsed_groups[parsed[k]].add(k)
    correct = sum(len(lines) for lines in parsed_groups.values()
                  if true_groups[truth[next(iter(lines))]] == lines)
    return correct / len(keys) if keys else 0.0
