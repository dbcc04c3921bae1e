import pytest

from apps.projects.values import InvalidValue, LabelIndex, LabelPart, value_parse, value_render


def parse(cast, raw, text="Some text here"):
    return value_parse(project=cast.project, labels=LabelIndex.for_project(cast.project), raw=raw, text=text)


def test_single_label_accepts_a_name_or_a_one_item_list(cast):
    world = cast.labels["World"].pk
    assert parse(cast, "World") == [LabelPart(None, None, world)]
    assert parse(cast, ["world"]) == [LabelPart(None, None, world)]


@pytest.mark.parametrize("raw", [["World", "Sports"], [], 999_999, None, "Weather", [""], True])
def test_single_label_refuses_anything_else(cast, raw):
    with pytest.raises(InvalidValue):
        parse(cast, raw)


def test_multi_label_takes_lists_and_pipes_and_drops_repeats(multi_cast):
    parts = parse(multi_cast, "Health|Economy|health")
    assert [p.label_id for p in parts] == sorted([multi_cast.labels["Health"].pk, multi_cast.labels["Economy"].pk])


def test_spans_render_back_with_their_text(spans_cast):
    labels = LabelIndex.for_project(spans_cast.project)
    text = "Ada met Bob"
    parts = parse(
        spans_cast, [{"start": 8, "end": 11, "label": "Person"}, {"start": 0, "end": 3, "label": "Person"}], text
    )

    rendered = value_render(project=spans_cast.project, labels=labels, parts=parts, text=text)

    assert rendered == [
        {"start": 0, "end": 3, "label": "Person", "text": "Ada"},
        {"start": 8, "end": 11, "label": "Person", "text": "Bob"},
    ]


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([{"start": 0, "end": 0, "label": "Person"}], "outside the text"),
        ([{"start": -1, "end": 2, "label": "Person"}], "outside the text"),
        ([{"start": 3, "end": 4, "label": "Person"}], "only whitespace"),
        ([{"start": "0", "end": 2, "label": "Person"}], "whole-number"),
        ([{"start": 0, "end": 2, "label": "Person"}] * 2, "given twice"),
        ("Person", "must be a list"),
    ],
)
def test_spans_are_checked(spans_cast, spans, message):
    with pytest.raises(InvalidValue, match=message):
        parse(spans_cast, spans, "Ada met Bob")
