"""The labelling-function engine: each kind on small hand-written texts, the regex time
limit, and the errors a hand-written definition file gets."""

import json
import re
import time

import numpy as np
import pytest

from apps.learning import rules
from apps.learning.rules import Context, Fired, RuleError, definition_parse, definitions_dump, definitions_load

LABELS = ["Sports", "Business", "World", "Sci/Tech"]
ENTITIES = ["LOC", "ORG"]


def parse(data, task_type=rules.SINGLE_LABEL):
    labels = ENTITIES if task_type == rules.SPANS else LABELS
    return definition_parse(data, label_names=labels, task_type=task_type)


def fired(data, texts, context=None, task_type=rules.SINGLE_LABEL):
    return rules.rule_apply(parse(data, task_type), texts, context).fired


def keywords(**params):
    return {"name": "sports-teams", "kind": "keywords", "label": "Sports", "keywords": ["lakers", "chelsea"], **params}


def raises(message, data, task_type=rules.SINGLE_LABEL):
    with pytest.raises(RuleError, match=re.escape(message)) as caught:
        parse(data, task_type)
    return caught.value


# --- keywords -------------------------------------------------------------------------------


def test_keywords_match_whole_words_ignoring_case_and_highlight_every_occurrence():
    texts = ["The Lakers beat Chelsea; LAKERS again", "Lakersville news", "nothing here"]

    assert fired(keywords(), texts) == [Fired(0, "Sports", [(4, 10), (16, 23), (25, 31)])]


def test_keywords_match_substrings_when_asked():
    texts = ["Lakersville news", "nothing here"]

    assert fired(keywords(match="substring"), texts) == [Fired(0, "Sports", [(0, 6)])]


def test_keywords_respect_case_when_asked():
    data = keywords(keywords=["Apple"], case_sensitive=True, label="Business")

    assert fired(data, ["apple pie", "Apple shares rose"]) == [Fired(1, "Business", [(0, 5)])]


def test_keywords_prefer_the_longest_phrase_and_match_punctuated_words():
    data = keywords(keywords=["new", "new york", "c++"])

    assert fired(data, ["New York stocks", "I like C++ a lot", "newer"]) == [
        Fired(0, "Sports", [(0, 8)]),
        Fired(1, "Sports", [(7, 10)]),
    ]


def test_keywords_keep_offsets_when_lowercasing_changes_a_texts_length():
    # "İ".lower() is two characters: offsets must still point into the original text.
    text = "İstanbul BANK news"

    assert fired(keywords(keywords=["bank"]), [text]) == [Fired(0, "Sports", [(9, 13)])]
    assert text[9:13] == "BANK"


# --- regex ------------------------------------------------------------------------------------


def test_regex_votes_and_highlights_every_match():
    data = {"name": "markets", "kind": "regex", "label": "Business", "pattern": r"\b(shares?|stocks?)\b"}

    assert fired(data, ["Shares fell; stock rose", "a shareholder"]) == [Fired(0, "Business", [(0, 6), (13, 18)])]


def test_regex_respects_case_when_asked():
    data = {"name": "acronyms", "kind": "regex", "label": "World", "pattern": r"\bUN\b", "case_sensitive": True}

    assert fired(data, ["the un met", "the UN met"]) == [Fired(1, "World", [(4, 6)])]


def test_a_zero_width_regex_votes_without_highlights():
    data = {"name": "no-goal", "kind": "regex", "label": "Business", "pattern": r"^(?!.*\bgoal\b)"}

    assert fired(data, ["a late goal", "profits up"]) == [Fired(1, "Business", [])]


def test_a_catastrophic_pattern_times_out_abstains_and_is_counted():
    data = {"name": "backtracks", "kind": "regex", "label": "Sports", "pattern": r"(a|aa)+$"}
    texts = ["a" * 40 + "!", "aa"]

    started = time.perf_counter()
    application = rules.rule_apply(parse(data), texts)

    assert time.perf_counter() - started < 1
    assert application.timeouts == 1
    assert application.fired == [Fired(1, "Sports", [(0, 2)])]


def test_the_classic_nested_quantifier_returns_at_once_and_abstains():
    # The regex package's engine guards against (a+)+$, so it fails fast rather than
    # timing out; either way the text abstains and the call returns quickly.
    data = {"name": "nested", "kind": "regex", "label": "Sports", "pattern": r"(a+)+$"}

    started = time.perf_counter()
    application = rules.rule_apply(parse(data), ["a" * 40 + "!"])

    assert time.perf_counter() - started < 1
    assert application.fired == []
    assert application.timeouts <= 1


def test_regex_proposes_every_non_overlapping_match_as_a_span():
    data = {"name": "acronyms", "kind": "regex", "label": "ORG", "pattern": r"\b[A-Z]{2,}\b", "case_sensitive": True}

    assert fired(data, ["NASA and ESA met", "nobody"], task_type=rules.SPANS) == [Fired(0, "ORG", [(0, 4), (9, 12)])]


# --- gazetteer --------------------------------------------------------------------------------


def test_gazetteer_proposes_whole_word_occurrences_as_spans():
    data = {"name": "cities", "kind": "gazetteer", "label": "LOC", "phrases": ["New York", "York"]}
    texts = ["new york and York, not Yorkshire", "Paris"]

    assert fired(data, texts, task_type=rules.SPANS) == [Fired(0, "LOC", [(0, 8), (13, 17)])]


def test_gazetteer_respects_case_when_asked():
    data = {"name": "cities", "kind": "gazetteer", "label": "LOC", "phrases": ["Reading"], "case_sensitive": True}

    assert fired(data, ["reading in Reading"], task_type=rules.SPANS) == [Fired(0, "LOC", [(11, 18)])]


# --- similarity, model, external --------------------------------------------------------------

ITEMS = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)


def test_similarity_votes_when_close_enough_to_the_labels_vector():
    data = {"name": "near-sports", "kind": "similarity", "label": "Sports", "threshold": 0.5}
    context = Context(vectors=ITEMS, label_vectors={"Sports": np.array([1.0, 0.0])})

    assert fired(data, ["a", "b", "c"], context) == [Fired(0, "Sports", []), Fired(1, "Sports", [])]


def test_similarity_compares_with_its_own_text():
    data = {"name": "football", "kind": "similarity", "label": "Sports", "text": "football", "threshold": 0.7}
    embedded = []

    def text_vectors(texts):
        embedded.extend(texts)
        return np.array([[0.0, 1.0]])

    by_callable = Context(vectors=ITEMS, label_vectors={"Sports": np.array([1.0, 0.0])}, text_vectors=text_vectors)
    by_key = Context(vectors=ITEMS, label_vectors={"football": np.array([0.0, 1.0])})

    assert fired(data, ["a", "b", "c"], by_callable) == [Fired(1, "Sports", []), Fired(2, "Sports", [])]
    assert embedded == ["football"]
    assert fired(data, ["a", "b", "c"], by_key) == [Fired(1, "Sports", []), Fired(2, "Sports", [])]


def test_similarity_without_embeddings_is_an_error_naming_the_function():
    data = {"name": "near-sports", "kind": "similarity", "label": "Sports"}

    with pytest.raises(RuleError, match=r'Function "near-sports": .*item embeddings') as caught:
        fired(data, ["a"])
    assert caught.value.name == "near-sports"
    with pytest.raises(RuleError, match='no vector for "Sports"'):
        fired(data, ["a", "b", "c"], Context(vectors=ITEMS))
    with pytest.raises(RuleError, match="2 rows of item embeddings for 3 texts"):
        fired(data, ["a", "b", "c"], Context(vectors=ITEMS[:2], label_vectors={"Sports": ITEMS[0]}))


def test_model_votes_its_predicted_label_above_the_threshold():
    probs = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [np.nan, np.nan]])
    context = Context(model_probs=probs, model_labels=["Sports", "Business"])
    texts = ["a", "b", "c", "d"]

    assert fired({"name": "champion", "kind": "model"}, texts, context) == [
        Fired(0, "Sports", []),
        Fired(2, "Business", []),
    ]
    assert [f.index for f in fired({"name": "champion", "kind": "model", "threshold": 0.5}, texts, context)] == [
        0,
        1,
        2,
    ]


def test_model_without_probabilities_is_an_error():
    with pytest.raises(RuleError, match=r'Function "champion": .*model_probs'):
        fired({"name": "champion", "kind": "model"}, ["a"], Context())


def test_external_votes_the_imported_label_when_its_score_is_high_enough():
    predictions = [("Sports", 0.8), ("Business", None), None, ("World", 0.2)]
    context = Context(external={"partner": predictions})
    data = {"name": "partner-model", "kind": "external", "source": "partner", "threshold": 0.5}

    assert fired(data, ["a", "b", "c", "d"], context) == [Fired(0, "Sports", []), Fired(1, "Business", [])]
    everything = {"name": "partner-model", "kind": "external", "source": "partner"}
    assert [f.label for f in fired(everything, ["a", "b", "c", "d"], context)] == ["Sports", "Business", "World"]


def test_external_without_the_source_is_an_error():
    data = {"name": "partner-model", "kind": "external", "source": "partner"}

    with pytest.raises(RuleError, match='imported predictions from "partner"'):
        fired(data, ["a"], Context(external={"other": [None]}))


def test_an_application_reports_its_time():
    application = rules.rule_apply(parse(keywords()), ["lakers"])

    assert application.timeouts == 0
    assert application.seconds >= 0


# --- definition_parse -------------------------------------------------------------------------


def test_parsing_fills_in_the_defaults():
    definition = parse(keywords())

    assert definition.name == "sports-teams"
    assert definition.kind == "keywords"
    assert definition.label == "Sports"
    assert definition.params == {"keywords": ["lakers", "chelsea"], "match": "word", "case_sensitive": False}
    assert definition.description == ""
    assert definition.enabled is True
    assert parse({"name": "m", "kind": "model"}).label is None


def test_wrong_types_are_named_with_the_function():
    error = raises('Function "sports-teams": "keywords" must be a list of strings.', keywords(keywords="lakers"))
    assert error.name == "sports-teams"
    raises('"keywords" must be a list of strings.', keywords(keywords=["lakers", 3]))
    raises('"case_sensitive" must be true or false.', keywords(case_sensitive="yes"))
    raises('"enabled" must be true or false.', keywords(enabled=1))
    raises('"description" must be a string.', keywords(description=["x"]))
    raises('"match" must be one of "word", "substring".', keywords(match="exact"))
    raises('"threshold" must be a number from 0 to 1.', {"name": "m", "kind": "model", "threshold": "high"})
    raises('"threshold" must be a number from 0 to 1.', {"name": "m", "kind": "model", "threshold": 1.5})
    raises('"threshold" must be a number from 0 to 1.', {"name": "m", "kind": "model", "threshold": True})


def test_unknown_kinds_and_kinds_that_do_not_fit_the_project_are_refused():
    raises(
        'Function "x": unknown kind "kw"; a single-label classification project takes "keywords"',
        {"name": "x", "kind": "kw"},
    )
    raises('Function "x": "kind" is required', {"name": "x"})
    raises(
        'Function "places": "gazetteer" functions do not fit a single-label classification project',
        {"name": "places", "kind": "gazetteer", "label": "Sports", "phrases": ["Paris"]},
    )
    raises(
        'Function "sports-teams": "keywords" functions do not fit an entity-span project, which takes "regex", "gazetteer".',
        keywords(label="LOC"),
        task_type=rules.SPANS,
    )
    assert parse(keywords(), rules.MULTI_LABEL).kind == "keywords"
    assert rules.kinds_for(rules.SPANS) == ["regex", "gazetteer"]
    with pytest.raises(ValueError, match="Unknown task type"):
        definition_parse(keywords(), label_names=LABELS, task_type="single")


def test_unknown_labels_and_keys_are_refused():
    raises(
        'Function "sports-teams": unknown label "Sprots"; the labels are "Sports", "Business"', keywords(label="Sprots")
    )
    raises(
        'Function "sports-teams": unknown key "lables"; a "keywords" function takes "name", "kind", "description", '
        '"enabled", "label", "keywords", "match", "case_sensitive".',
        keywords(lables="x"),
    )
    raises('unknown key "label"; a "model" function takes', {"name": "m", "kind": "model", "label": "Sports"})
    raises('unknown key "pattern"; a "keywords" function takes', keywords(pattern="x"))
    with pytest.raises(RuleError, match='Function "sports-teams": the project has no labels yet.'):
        definition_parse(keywords(), label_names=[], task_type=rules.SINGLE_LABEL)


def test_missing_keys_are_named():
    raises('Function "sports-teams": "label" is required: one of "Sports"', keywords(label=None))
    raises('Function "markets": "pattern" is required.', {"name": "markets", "kind": "regex", "label": "Business"})
    raises('Function "partner": "source" is required.', {"name": "partner", "kind": "external"})
    raises('Function has no "name".', {"kind": "model"})
    raises('Function must be a JSON object with a "name" and a "kind".', ["keywords"])


def test_names_must_be_slugs():
    error = raises('Function "sports teams": a name must be 1 to 100 letters', keywords(name="sports teams"))
    assert error.name == "sports teams"
    raises("must be 1 to 100 letters", keywords(name="x" * 101))
    raises("must be 1 to 100 letters", keywords(name=""))
    assert parse(keywords(name="ag.sports_teams-2")).name == "ag.sports_teams-2"


def test_keyword_limits():
    raises('"keywords" must hold from 1 to 500 strings; it holds 0.', keywords(keywords=[]))
    raises(
        '"keywords" must hold from 1 to 500 strings; it holds 501.', keywords(keywords=[f"k{i}" for i in range(501)])
    )
    raises('"keywords" must hold non-blank strings of at most 200 characters', keywords(keywords=["x" * 201]))
    raises('"keywords" must hold non-blank strings of at most 200 characters', keywords(keywords=["  "]))
    assert len(parse(keywords(keywords=["x" * 200] * 500)).params["keywords"]) == 500


def test_bad_patterns_are_refused_without_compiling_a_bomb():
    regex = {"name": "markets", "kind": "regex", "label": "Business"}
    raises('Function "markets": "pattern" cannot be used: it does not compile', {**regex, "pattern": "(shares"})
    raises('"pattern" must be a non-blank string of at most 1000 characters.', {**regex, "pattern": "a" * 1001})
    raises('"pattern" must be a non-blank string', {**regex, "pattern": 5})
    raises("verbose mode (?x) is not supported", {**regex, "pattern": "(?x)a{1 000}"})
    started = time.perf_counter()
    # Compiling this one takes the regex package many seconds and gigabytes.
    raises("repeat counts {m,n} multiply to more than 100,000", {**regex, "pattern": "((a{1000}){1000}){1000}"})
    assert time.perf_counter() - started < 1
    assert parse({**regex, "pattern": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"}).kind == "regex"
    assert parse({**regex, "pattern": r"\{1000000\}"}).kind == "regex"  # escaped braces are text


# --- definitions_load / definitions_dump ------------------------------------------------------


def load(data, task_type=rules.SINGLE_LABEL):
    raw = data if isinstance(data, bytes | str) else json.dumps(data)
    labels = ENTITIES if task_type == rules.SPANS else LABELS
    return definitions_load(raw, label_names=labels, task_type=task_type)


def load_raises(message, data):
    with pytest.raises(RuleError, match=re.escape(message)) as caught:
        load(data)
    return caught.value


def test_a_file_that_is_not_json_or_not_utf8_is_refused():
    error = load_raises(
        "The file is not valid JSON: Expecting property name enclosed in double quotes (line 1", b"{not json"
    )
    assert error.name == ""
    load_raises("The file is not UTF-8 text.", b'{"labelling_functions": ["\xff"]}')


def test_a_file_over_the_size_limit_is_refused():
    load_raises("The file has 1,000,001 bytes; the limit is 1,000,000 (1 MB).", b" " * (rules.MAX_FILE_BYTES + 1))


def test_a_file_nested_too_deeply_is_refused():
    deep = keywords(description="x")
    deep["description"] = json.loads("[" * 19 + "]" * 19)  # 3 levels above it, 22 in all
    load_raises("The file nests objects and lists more than 20 deep.", {"labelling_functions": [deep]})
    deep["description"] = json.loads("[" * 17 + "]" * 17)  # 20 in all: past the file check
    load_raises('Function "sports-teams": "description" must be a string.', {"labelling_functions": [deep]})
    # So deep that the JSON decoder itself gives up: a clear error, not a crash.
    load_raises("more than 20 deep", "[" * 200_000 + "]" * 200_000)


def test_the_file_must_hold_a_list_of_functions():
    message = 'The file must be a JSON object with a "labelling_functions" list.'
    load_raises(message, {"functions": []})
    load_raises(message, {"labelling_functions": {"sports": keywords()}})
    load_raises(message, [keywords()])
    load_raises('The file has unknown keys "version"', {"labelling_functions": [], "version": 1})
    load_raises(
        'The file repeats the key "label" inside one object.', '{"labelling_functions": [{"label": 1, "label": 2}]}'
    )
    assert load({"labelling_functions": []}) == []


def test_a_file_with_too_many_functions_is_refused():
    functions = [keywords(name=f"f{i}") for i in range(501)]

    load_raises("The file has 501 functions; the limit is 500.", {"labelling_functions": functions})
    assert len(load({"labelling_functions": functions[:500]})) == 500


def test_names_in_a_file_must_be_unique():
    functions = [keywords(), {"name": "m", "kind": "model"}, keywords(keywords=["arsenal"])]

    error = load_raises(
        'Function "sports-teams": functions #1 and #3 have this name; names must be unique.',
        {"labelling_functions": functions},
    )
    assert error.name == "sports-teams"


def test_an_error_inside_the_file_names_the_function_or_its_position():
    error = load_raises(
        'Function "markets": "pattern" cannot be used',
        {"labelling_functions": [keywords(), {**keywords(name="markets", kind="regex", pattern="(")}]},
    )
    assert error.name == "markets"
    load_raises('Function #2 has no "name".', {"labelling_functions": [keywords(), {"kind": "model"}]})


def test_dump_then_load_gives_the_same_definitions():
    functions = [
        keywords(match="substring", description="Team names seen in the demo texts."),
        {"name": "markets", "kind": "regex", "label": "Business", "pattern": r"\bshares?\b", "enabled": False},
        {"name": "near-sports", "kind": "similarity", "label": "Sports", "text": "a football match"},
        {"name": "near-world", "kind": "similarity", "label": "World", "threshold": 0.55},
        {"name": "champion", "kind": "model", "threshold": 0.8},
        {"name": "partner", "kind": "external", "source": "partner-model"},
    ]
    definitions = load({"labelling_functions": functions})

    dumped = definitions_dump(definitions)
    again = load(json.dumps(dumped).encode())

    assert again == definitions
    assert dumped["labelling_functions"][2] == {
        "name": "near-sports",
        "kind": "similarity",
        "label": "Sports",
        "threshold": 0.4,
        "text": "a football match",
        "enabled": True,
    }
    assert [d.to_json() for d in again] == dumped["labelling_functions"]


def test_dump_then_load_round_trips_span_functions_and_accepts_a_bom():
    functions = [
        {"name": "cities", "kind": "gazetteer", "label": "LOC", "phrases": ["Paris", "New York"]},
        {"name": "acronyms", "kind": "regex", "label": "ORG", "pattern": "[A-Z]{3}", "case_sensitive": True},
    ]
    definitions = load({"labelling_functions": functions}, rules.SPANS)

    raw = b"\xef\xbb\xbf" + json.dumps(definitions_dump(definitions)).encode()

    assert load(raw, rules.SPANS) == definitions
