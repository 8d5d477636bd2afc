"""Masking, Drain template mining with JSON state, format strings and the readers."""
from __future__ import annotations

import json

import pytest

from oddity.core.errors import ConfigError, DataError, ModelFileError
from oddity.logs.data import ReadReport, read_event_sessions, read_jsonl, read_log, read_raw, read_session_labels
from oddity.logs.formats import LineFormat
from oddity.logs.masking import Masker
from oddity.logs.parser import UNSEEN, TemplateParser, ValueAwareDrain
from oddity.logs.variants import placeholder_pattern, skeleton


def test_default_masks_replace_variable_values():
    masker = Masker()
    assert masker.mask("Receiving block blk_-695 src: /10.251.73.220:50010 dest: /10.0.0.1:5") == \
        "Receiving block <BLK> src: /<ADDR> dest: /<ADDR>"
    assert masker.mask("3f1c2e4a-1b2c-4d5e-8f90-123456789abc size=512, took 0.25 s") == \
        "<UUID> size=<NUM>, took <NUM> s"
    assert masker.mask("node R02-M1-N0 core.2275 ssh2") == "node <ID> core.<NUM> <ID>"
    assert masker.mask("at 0x7fed806eb5d in /usr/lib/libc.so at 12:01:01") == \
        "at <NUM> in <PATH> at <TIME>"
    # hexadecimal and decimal values are both numbers; a list of one kind of value is one value;
    # a path keeps its query string
    assert masker.mask("iar 00106570 dear 0010d3d0") == "iar <NUM> dear <NUM>"
    assert masker.mask('10.11.10.1,10.11.21.138 "GET /v2/servers/detail?all=True&x=1 HTTP/1.1"') == \
        '<ADDR> "GET <PATH> HTTP/<NUM>"'
    assert masker.mask("sizes 1,2,3 and a,b") == "sizes <NUM> and a,b"
    assert masker.mask("user root logged in") == "user root logged in"


def test_mask_rules_are_checked():
    with pytest.raises(ConfigError, match="invalid regular expression"):
        Masker((("BAD", "(unclosed"),))
    with pytest.raises(ConfigError, match="mask name"):
        Masker((("no spaces", r"\d+"),))


def test_learn_groups_lines_and_match_is_stable():
    parser = TemplateParser()
    a = parser.learn("session opened for user alice by uid 0")
    b = parser.learn("session opened for user bob by uid 1000")
    c = parser.learn("disk /dev/sda1 is full")
    assert a == b != c
    assert parser.template(a) == "session opened for user <*> by uid <NUM>"
    before = parser.templates()
    assert parser.match("session opened for user carol by uid 7") == a
    assert parser.match("kernel panic: not syncing") == UNSEEN
    assert parser.match("kernel panic: not syncing") == UNSEEN
    assert parser.templates() == before  # match-only never creates nor generalises templates
    assert parser.unseen == {"kernel panic: not syncing": 2}


def test_parser_state_round_trips_through_json():
    parser = TemplateParser(sim_th=0.6, depth=5)
    messages = [f"job {i} finished in {i * 3} ms on node{i % 4}" for i in range(30)]
    messages += [f"connection from 10.0.0.{i} refused" for i in range(10)]
    for m in messages:
        parser.learn(m)
    restored = TemplateParser.from_dict(json.loads(json.dumps(parser.to_dict())))
    assert restored.templates() == parser.templates()
    assert restored.settings() == parser.settings()
    probes = messages + ["job 99 finished in 5 ms on node9", "something else entirely"]
    assert [restored.match(m) for m in probes] == [parser.match(m) for m in probes]
    with pytest.raises(ModelFileError):
        TemplateParser.from_dict({"settings": {}, "clusters": [["x"]], "counter": 1, "tree": {}})


def test_line_format_splits_fields_and_needs_content():
    fmt = LineFormat(r"<Date> <Time> <Level> \[<Component>\] <Content>")
    assert fmt.split("2024-01-01 10:00:00 INFO [db]  query took 5 ms") == {
        "Date": "2024-01-01", "Time": "10:00:00", "Level": "INFO", "Component": "db",
        "Content": "query took 5 ms"}
    assert fmt.split("garbage") is None
    with pytest.raises(ConfigError, match="Content"):
        LineFormat("<Date> <Message>")
    with pytest.raises(ConfigError, match="twice"):
        LineFormat("<A> <A> <Content>")


def test_raw_reader_counts_unparsed_lines_and_reads_labels(tmp_path):
    path = tmp_path / "bgl.log"
    path.write_text("- 1 R01 RAS KERNEL INFO cache parity error corrected\n"
                    "this line does not fit\n"
                    "\n"
                    "KERNDTLB 2 R02 RAS KERNEL FATAL data TLB error interrupt\n", encoding="utf-8")
    report = ReadReport(str(path))
    lines = list(read_raw(path, "<Label> <Time> <Node> <Type> <Component> <Level> <Content>",
                          label_field="Label", report=report))
    assert [(l.number, l.label, l.content) for l in lines] == [
        (1, 0, "cache parity error corrected"), (4, 1, "data TLB error interrupt")]
    assert (report.lines, report.parsed, report.unparsed, report.blank) == (4, 2, 1, 1)
    assert report.examples == [(2, "this line does not fit")]
    assert "1 not fitting the format (first at line 2)" in report.summary()


def test_raw_reader_refuses_bad_input(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        list(read_raw(empty))
    latin = tmp_path / "latin.log"
    latin.write_bytes("ok line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.log:2: not valid utf-8.*--encoding"):
        list(read_raw(latin))
    assert [l.content for l in read_raw(latin, encoding="latin-1")][1] == "café au lait"
    other = tmp_path / "other.log"
    other.write_text("081109 203615 148 INFO dfs: hello\n" * 3, encoding="utf-8")
    with pytest.raises(DataError, match="fits none of the lines; line 1 is '081109 203615"):
        list(read_raw(other, r"\[<Time>\] <Content>"))
    with pytest.raises(DataError, match="no such file"):
        list(read_raw(tmp_path / "missing.log"))


def test_jsonl_structured_and_label_readers(tmp_path):
    jsonl = tmp_path / "app.jsonl"
    jsonl.write_text('{"message": "user 1 logged in", "host": "a", "Label": "-"}\n'
                     'not json\n'
                     '{"message": "disk full", "host": "b", "Label": "ALERT"}\n', encoding="utf-8")
    report = ReadReport(str(jsonl))
    lines = list(read_jsonl(jsonl, label_field="Label", report=report))
    assert [(l.content, l.fields["host"], l.label) for l in lines] == [
        ("user 1 logged in", "a", 0), ("disk full", "b", 1)]
    assert report.unparsed == 1
    with pytest.raises(DataError, match="no line is a JSON object"):
        list(read_jsonl(jsonl, content_field="msg"))
    structured = tmp_path / "x_structured.csv"
    structured.write_text('LineId,Level,Content,EventTemplate\n7,INFO,"a, b",t\n8,WARN,c,u\n', encoding="utf-8")
    assert [(l.number, l.content) for l in read_log(structured)] == [(7, "a, b"), (8, "c")]
    with pytest.raises(ConfigError, match="--format applies to raw"):
        read_log(structured, format="<Content>")
    labels = tmp_path / "labels.csv"
    labels.write_text("BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\n", encoding="utf-8")
    assert read_session_labels(labels) == {"blk_1": 0, "blk_2": 1}
    labels.write_text("BlockId,Label\nblk_1,maybe\n", encoding="utf-8")
    with pytest.raises(DataError, match="maybe"):
        read_session_labels(labels)


def test_event_session_reader(tmp_path):
    path = tmp_path / "sessions.csv"
    path.write_text('BlockId,Label,Split_x,EventTemplates_json\n'
                    'blk_1,Normal,train,"[""a <*>"", ""b""]"\n'
                    'blk_2,Anomaly,test,"[""c""]"\n', encoding="utf-8")
    sequences, splits = read_event_sessions(path)
    assert sequences.ids == ["blk_1", "blk_2"] and sequences.events == [["a <*>", "b"], ["c"]]
    assert sequences.labels.tolist() == [0, 1] and splits == ["train", "test"]
    path.write_text("BlockId,Label\nblk_1,Normal\n", encoding="utf-8")
    with pytest.raises(DataError, match="EventTemplates_json"):
        read_event_sessions(path)


def _generated_log(n: int, seed: int) -> list[str]:
    """Messages of a few dozen events with variable values, repeated in random order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    events = [
        "Receiving block blk_{i} src: /10.0.{a}.{b}:50010 dest: /10.0.{b}.{a}:50010",
        "PacketResponder {a} for block blk_{i} terminating",
        "session opened for user {w} by (uid={a})",
        "session closed for user {w}",
        "Connection from {a}.{b}.1.2 port {i} on {w}",
        "job {i} finished in {a} ms on node{b}",
        "job {i} failed on node{b}: {w} not found",
        "disk /dev/sd{w} is {a}% full",
        "{w} {w} {w} started",
        "Failed password for {w} from 10.1.{a}.{b} port {i} ssh2",
        "Failed password for invalid user {w} from 10.1.{a}.{b} port {i} ssh2",
        "{a} bytes sent, {b} bytes received, lifetime {a}:{b}",
        "VM {w} ({w}) Lifecycle Event",
    ]
    words = ["alice", "bob", "root", "test", "cron", "sda", "x"]
    out = []
    for _ in range(n):
        event = events[int(rng.integers(len(events)))]
        out.append(event.format(i=int(rng.integers(-10**9, 10**9)), a=int(rng.integers(0, 300)),
                                b=int(rng.integers(0, 300)), w=words[int(rng.integers(len(words)))]))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learn_and_match_caches_give_drains_own_templates(seed):
    messages = _generated_log(3000, seed)
    parser = TemplateParser()
    reference = ValueAwareDrain(parser.placeholders, parser.value_mismatch, sim_th=parser.sim_th,
                                depth=parser.depth, max_children=parser.max_children,
                                extra_delimiters=parser.extra_delimiters)
    masker = Masker()
    ids = [parser.learn(m) for m in messages]
    expected = [reference.add_log_message(masker.mask(m))[0].cluster_id for m in messages]
    assert ids == expected
    assert parser.clusters() == {c.cluster_id: (c.get_template(), c.size) for c in reference.clusters}
    restored = TemplateParser.from_dict(parser.to_dict())  # empty caches
    probes = messages + _generated_log(500, seed + 10)
    assert [parser.match(m) for m in probes] == [restored.match(m) for m in probes] == [
        UNSEEN if (c := reference.match(masker.mask(m), full_search_strategy="fallback")) is None
        else parser.event(c.cluster_id) for m in probes]


@pytest.mark.parametrize("seed", [0, 1])
def test_value_aware_drain_without_the_extra_cost_is_drain(seed):
    from drain3.drain import Drain

    messages = [Masker().mask(m) for m in _generated_log(1500, seed)]
    parser = TemplateParser(value_mismatch=0.0)
    ours = ValueAwareDrain(parser.placeholders, 0.0, sim_th=0.7, depth=5, extra_delimiters=("=",))
    drain = Drain(sim_th=0.7, depth=5, extra_delimiters=("=",))
    assert [ours.add_log_message(m)[0].cluster_id for m in messages] == \
        [drain.add_log_message(m)[0].cluster_id for m in messages]
    assert [c.get_template() for c in ours.clusters] == [c.get_template() for c in drain.clusters]


def test_a_value_facing_a_word_splits_short_messages_only():
    short = ["10.0.0.{i}:80 open through proxy 10.1.1.1:5070 HTTPS", "10.0.0.9:22 open through proxy 10.1.1.1:5070 SOCKS5"]
    for value_mismatch, events in ((1.0, 2), (0.0, 1)):
        parser = TemplateParser(value_mismatch=value_mismatch)
        ids = {parser.event(parser.learn(m.format(i=i))) for i in range(5) for m in short}
        assert len(ids) == events
    # one such difference among many equal tokens still joins the template
    parser = TemplateParser()
    long = "vis {v} mask {m} oldVal 1 newVal 2 diff 3 stackVis 0 dockedVis 0 bounds 0 0 0 0 end"
    a = parser.learn(long.format(v=1, m=1))
    b = parser.learn(long.format(v=2, m="ffffffff"))
    assert a == b


def test_variants_of_one_event_are_merged():
    parser = TemplateParser()
    lines = ["h{i}.example.com:80 close, {i} bytes sent, {i}0 bytes received, lifetime 00:0{i}",
             "h{i}.example.com:80 close, {i}000 bytes ({i}.2 KB) sent, {i}0 bytes received, lifetime 00:0{i}",
             "h{i}.example.com:80 close, {i} bytes sent, {i}000 bytes ({i}.5 MB) received, lifetime <1 sec",
             "connection from 10.0.0.{i} () at 12:00:0{i}",
             "connection from 10.0.0.{i} (host{i}.example.com) at 12:00:0{i}"]
    ids = [[parser.learn(line.format(i=i)) for i in range(1, 6)] for line in lines]
    events = [{parser.event(i) for i in group} for group in ids]
    assert events[0] == events[1] == events[2] and events[3] == events[4] and events[0] != events[3]
    assert len(parser.clusters()) == 5 and len(parser.templates()) == 2
    assert sum(size for _, size in parser.templates().values()) == 25
    assert parser.template(ids[1][0]) == parser.template(ids[0][0])
    # a different word is a different event, whatever the length
    other = parser.learn("h1.example.com:80 close, 1 bytes (1.1 KB) dropped, lifetime 00:01")
    assert parser.event(other) not in events[0]
    assert parser.match("h7.example.com:80 close, 70 bytes (7.1 KB) sent, 1 bytes received, lifetime 00:07") \
        == parser.event(ids[0][0])
    unmerged = TemplateParser(merge=False)
    for line in lines:
        unmerged.learn(line.format(i=1))
    assert len(unmerged.templates()) == 5


def test_skeleton_keeps_constant_words():
    pattern = placeholder_pattern(["NUM", "ADDR"])
    assert skeleton("<ADDR> close, <NUM> bytes (<NUM> KB) sent, lifetime <<NUM> sec".split(), pattern) == \
        ("close,", "sent,", "lifetime")  # "bytes" after a number is its unit
    assert skeleton("node<NUM> up <*> ()".split(), pattern) == ("node", "up")
    assert skeleton(["<NUM>", "<*>"], pattern) == ()


def test_state_saved_without_the_newer_settings_keeps_drains_behaviour():
    parser = TemplateParser()
    parser.learn("a b c 1")
    data = parser.to_dict()
    for key in ("value_mismatch", "merge"):
        del data["settings"][key]
    restored = TemplateParser.from_dict(data)
    assert restored.value_mismatch == 0.0 and restored.merge is False
    with pytest.raises(ConfigError, match="value_mismatch"):
        TemplateParser(value_mismatch=-1)


def test_masking_cache_gives_the_rules_result():
    masker = Masker()
    messages = _generated_log(500, 3)
    assert [masker.mask(m) for m in messages] == [
        " ".join(masker.mask_token(t) for t in m.split()) for m in messages]
    assert [Masker().mask(m) for m in messages] == [masker.mask(m) for m in messages]


@pytest.mark.parametrize("format, line", [
    ("<Date> <Time> <Level> <Component>: <Content>", "2024-01-01 10:00  INFO a.b:  x: y  z"),
    ("<Date> <Time> <Level> <Component>: <Content>", "d t l c d: e: f"),
    (r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>", "Jun 9 06:06:20 combo su(pam)[1]: x"),
    (r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>", "Jun 9 06:06:20 combo klogd: a b"),
    (r"\[<Time>\] <Program> - <Content>", "[10.30 16:49:06] chrome.exe - proxy.cse:5070 close, 0 bytes"),
    ("<A> <B> <Content>", "a  b"),
    ("<A> <B> <Content>", "a b"),
])
def test_line_format_keeps_the_lazy_pattern_fields(format, line):
    import re

    fmt = LineFormat(format)
    lazy = re.compile(fmt.regex.pattern.replace("(?P<Content>.*)$", "(?P<Content>.*?)$"))
    match = lazy.match(line.strip())
    expected = None if match is None else {k: (v or "").strip() for k, v in match.groupdict().items()}
    assert fmt.split(line) == expected


@pytest.mark.parametrize("format", [
    "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    r"<Time>\|<Component>\|<Pid>\|<Content>",
    r"\[<Time>\] <Program> - <Content>",
    "<Date> <Time>, <Level>  <Component>    <Content>",
])
def test_line_format_strips_fields_as_the_lazy_pattern_does(format):
    import random
    import re

    fmt = LineFormat(format)
    lazy = re.compile(fmt.regex.pattern.replace("(?P<Content>.*)$", "(?P<Content>.*?)$"))
    rng = random.Random(0)
    pieces = ["a", "bc", "1", ":", "|", "[", "]", "-", ",", "x[2]", " ", "  ", "\t", "su(pam)"]
    for _ in range(3000):
        line = rng.choice(["", "["]) + "".join(rng.choice(pieces) for _ in range(rng.randint(3, 25)))
        match = lazy.match(line.strip())
        expected = None if match is None else {k: (v or "").strip() for k, v in match.groupdict().items()}
        assert fmt.split(line) == expected, line


def test_masking_gives_what_the_plain_rules_substitute():
    import random
    import re

    from oddity.logs.masking import DEFAULT_MASKS

    # the rules as written without possessive runs, substituted the plain way
    plain = [p.replace("++", "+").replace("*+", "*") for _, p in DEFAULT_MASKS]
    plain = [p.replace(r"(?=[a-fA-F]*\d)(?=\d*[a-fA-F])", r"(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])")
             for p in plain]
    assert sum("(?=[0-9a-fA-F]*[a-fA-F])" in p for p in plain) == 1
    regex = re.compile("|".join(f"(?P<m{k}>{p})" for k, p in enumerate(plain)))
    names = {f"m{k}": f"<{name}>" for k, (name, _) in enumerate(DEFAULT_MASKS)}

    def reference(token):
        masked = regex.sub(lambda m: names[m.lastgroup], token)
        return re.sub(r"(<[A-Za-z_]\w*>)(?:,\1)+", r"\1", masked)

    rng = random.Random(0)
    alphabet = "aZ09fB./\\-_:,@$~+?=x\"'<>()[]é١²"
    tokens = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14))) for _ in range(20000)]
    tokens += [t for m in _generated_log(300, 4) for t in m.split()]
    masker = Masker()
    assert [masker.mask_token(t) for t in tokens] == [reference(t) for t in tokens]
