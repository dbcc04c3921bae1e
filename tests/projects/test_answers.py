import pytest

from apps.projects.answers import (
    WHITESPACE_SEPARATED,
    Answer,
    InvalidValue,
    LabelIndex,
    LabelPart,
    answer_score,
    bio_decode,
    bio_tags,
    tokens_of,
    value_parse,
    value_render,
)


def parse(cast, raw, text="Some text here"):
    return value_parse(project=cast.project, labels=LabelIndex.for_project(cast.project), raw=raw, text=text)


def test_single_label_accepts_a_name_or_a_one_item_list(cast):
    world = cast.labels["World"].pk
    assert parse(cast, "World") == Answer([LabelPart(None, None, world)])
    assert parse(cast, ["world"]) == Answer([LabelPart(None, None, world)])


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


def test_an_answer_is_sorted_so_equal_answers_are_equal():
    first = Answer([LabelPart(8, 11, 2), LabelPart(0, 3, 1)])
    second = Answer([LabelPart(0, 3, 1), LabelPart(8, 11, 2)])

    assert first == second and hash(first) == hash(second)
    assert [part.start for part in first] == [0, 8]
    assert Answer([LabelPart(None, None, 5), LabelPart(None, None, 2)]).label_ids == [2, 5]


def test_an_answer_round_trips_through_its_json_form():
    answer = Answer([LabelPart(0, 3, 1), LabelPart(None, None, 4)])

    assert Answer.from_json(answer.to_json()) == answer
    assert answer.to_json()[0] == {"start": None, "end": None, "label_id": 4}


def test_answer_helpers_say_what_it_holds():
    answer = Answer([LabelPart(None, None, 3), LabelPart(None, None, 7)])

    assert answer.label_id == 3 and answer.has(7) and not answer.has(9)
    assert answer.only_labels({7}) == Answer([LabelPart(None, None, 7)])
    assert Answer().label_id is None and not Answer()


def test_answers_are_scored_per_task_type():
    a, b, c = (LabelPart(None, None, n) for n in (1, 2, 3))

    assert answer_score("single_label", Answer([a]), Answer([a])) == 1.0
    assert answer_score("single_label", Answer([a]), Answer([b])) == 0.0
    assert answer_score("multi_label", Answer([a, b]), Answer([b, c])) == pytest.approx(1 / 3)
    spans = Answer([LabelPart(0, 3, 1), LabelPart(8, 11, 1)])
    assert answer_score("spans", spans, Answer([LabelPart(0, 3, 1)])) == pytest.approx(2 / 3)
    assert answer_score("spans", Answer(), Answer()) == 1.0


def test_spans_become_bio_tags_and_back():
    text = "Ada Lovelace met Charles Babbage"
    tokens = tokens_of(text)
    answer = Answer([LabelPart(0, 12, 1), LabelPart(17, 24, 2)])

    tags = bio_tags(tokens, answer)

    assert tags == ["B-1", "I-1", "O", "B-2", "O"]
    assert bio_decode(tokens, tags) == answer
    # Broken sequences decode to valid spans: a lone I- starts one.
    assert bio_decode(tokens, ["I-1", "I-1", "O", "I-2", "I-1"]) == Answer(
        [LabelPart(0, 12, 1), LabelPart(17, 24, 2), LabelPart(25, 32, 1)]
    )


def test_where_spans_overlap_a_token_the_first_span_wins_and_the_next_starts_with_b():
    text = "New York City"
    tokens = tokens_of(text, WHITESPACE_SEPARATED)
    answer = Answer([LabelPart(0, 8, 1), LabelPart(4, 13, 2)])

    assert bio_tags(tokens, answer) == ["B-1", "I-1", "B-2"]


def test_an_answer_field_reads_back_as_an_answer(cast):
    from apps.annotation.models import ItemConsensus
    from tests.factories import ItemFactory

    item = ItemFactory(project=cast.project)
    world = cast.labels["World"].pk
    # The JSON form is accepted on assignment and turned into an Answer at once.
    consensus = ItemConsensus.objects.create(
        project=cast.project, item=item, parts=[{"start": None, "end": None, "label_id": world}], method="test"
    )

    assert isinstance(consensus.parts, Answer) and consensus.parts.label_id == world
    stored = ItemConsensus.objects.values_list("parts", flat=True).get()
    assert stored == Answer([LabelPart(None, None, world)])
    assert ItemConsensus.objects.get().parts == stored
