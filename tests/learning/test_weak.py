"""Weak supervision end to end: functions stored and versioned, applied in chunks, denoised
with people as sources beside them, and a first model trained before anyone labels."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.annotation.models import Annotation, AnnotationLabel, ItemConsensus
from apps.learning import weak, weak_analysis
from apps.learning.models import (
    ExternalPrediction,
    LabellingFunction,
    ModelVersion,
    RuleApplication,
    RuleVote,
    SourceEstimate,
    TrainingRun,
    VersionStatus,
    WeakLabel,
)
from apps.learning.training_sets import _held_out, sets_build
from apps.projects.jobs import JobState, jobs_recover
from apps.projects.models import Item
from apps.projects.services import label_delete, label_update

from .conftest import news

FUNCTIONS = {
    "labelling_functions": [
        {"name": "sport-words", "kind": "keywords", "label": "Sports",
         "keywords": ["match", "season", "coach", "goal", "title", "league", "tournament", "championship"]},
        {"name": "money-words", "kind": "keywords", "label": "Business",
         "keywords": ["shares", "revenue", "profit", "investors", "market", "bank", "percent"]},
        {"name": "state-words", "kind": "keywords", "label": "World",
         "keywords": ["minister", "government", "parliament", "president", "election", "border", "troops"]},
        {"name": "lab-pattern", "kind": "regex", "label": "Science",
         "pattern": r"\b(scientists?|researchers?|study|probe|species|telescope)\b"},
    ]
}  # fmt: skip


def items(project, count):
    rows = news(count)
    created = [Item.objects.create(project=project, text=row["text"], external_id=row["id"]) for row in rows]
    return created, {item.pk: row["topic"] for item, row in zip(created, rows, strict=True)}


def agreed(project, item, label):
    """People's consensus on an item (or an item id), as a full consolidation pass writes it."""
    item_id = getattr(item, "pk", item)
    ItemConsensus.objects.create(
        project=project, item_id=item_id, parts=[{"start": None, "end": None, "label_id": label.pk}],
        confidence=1.0, method="majority_vote", is_provisional=False,
    )  # fmt: skip


def annotate(project, item, user, label):
    annotation = Annotation.objects.create(
        project=project, item=item, annotator=user, duration_ms=2000, submission_id=uuid.uuid4()
    )
    AnnotationLabel.objects.create(annotation=annotation, label=label)


def test_import_export_round_trips_and_edits_make_versions(cast):
    counts = weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS), user=cast.manager)
    assert counts == {"created": 4, "updated": 0, "unchanged": 0}
    exported = weak.functions_export(project=cast.project)
    again = weak.functions_import(project=cast.project, raw=json.dumps(exported), user=cast.manager)
    assert again == {"created": 0, "updated": 0, "unchanged": 4}

    edited = json.loads(json.dumps(FUNCTIONS))
    edited["labelling_functions"][0]["keywords"].append("stadium")
    assert weak.functions_import(project=cast.project, raw=json.dumps(edited))["updated"] == 1
    sport = LabellingFunction.objects.get(project=cast.project, name="sport-words")
    assert sport.version == 2 and list(sport.versions.values_list("number", flat=True)) == [1, 2]
    assert "stadium" in sport.definition["keywords"]
    assert "stadium" not in sport.versions.get(number=1).definition["keywords"]


def test_a_bad_file_names_the_function_and_changes_nothing(cast):
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    broken = json.loads(json.dumps(FUNCTIONS))
    broken["labelling_functions"][1]["keywords"].append("dividend")  # a valid change ...
    broken["labelling_functions"][3]["label"] = "Weather"  # ... beside a wrong label
    with pytest.raises(ValidationError) as refused:
        weak.functions_import(project=cast.project, raw=json.dumps(broken))
    assert "lab-pattern" in str(refused.value) and "Weather" in str(refused.value)
    money = LabellingFunction.objects.get(project=cast.project, name="money-words")
    assert money.version == 1 and "dividend" not in money.definition["keywords"]
    with pytest.raises(ValidationError, match="labelling_functions"):
        weak.functions_import(project=cast.project, raw=b'{"functions": []}')


def test_a_name_is_unique_in_a_project(cast):
    weak.function_save(project=cast.project, data=FUNCTIONS["labelling_functions"][0])
    with pytest.raises(ValidationError, match="already has a function"):
        weak.function_save(project=cast.project, data=FUNCTIONS["labelling_functions"][0])


def test_a_multi_label_project_is_told_it_cannot_use_functions(multi_cast):
    with pytest.raises(ValidationError, match="multi-label"):
        weak.function_save(project=multi_cast.project, data=FUNCTIONS["labelling_functions"][0])


def test_applying_in_chunks_writes_votes_weak_labels_and_trains_a_first_model(
    cast, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(weak, "APPLY_CHUNK", 40)
    created, truth = items(cast.project, 160)
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))

    with django_capture_on_commit_callbacks(execute=True):
        application = weak.rules_apply_request(project=cast.project, user=cast.manager)

    application.refresh_from_db()
    assert application.state == JobState.SUCCEEDED and application.chunks_done == [0, 1, 2, 3]
    assert application.progress == 100
    weak_labels = list(WeakLabel.objects.filter(project=cast.project))
    assert len(weak_labels) >= 60
    names = {label.pk: label.name for label in cast.project.labels.all()}
    right = sum(names[w.answer.label_id] == truth[w.item_id] for w in weak_labels)
    assert right / len(weak_labels) > 0.7
    assert all(0 < w.confidence <= 1 and w.method == "dawid_skene" for w in weak_labels)
    assert set(SourceEstimate.objects.filter(project=cast.project).values_list("key", flat=True)) == {
        f["name"] for f in FUNCTIONS["labelling_functions"]
    }

    # No person has labelled anything: a model trained on weak labels alone, and it is the champion.
    run = TrainingRun.objects.get(project=cast.project)
    assert run.trigger == "weak" and run.state == JobState.SUCCEEDED
    version = ModelVersion.objects.get(project=cast.project)
    assert version.status == VersionStatus.CHAMPION
    assert version.snapshot["weak_items"] == len(weak_labels) and version.snapshot["human_items"] == 0
    assert version.metrics["size"] == 0  # no evaluation yet
    # ... and the pool is ranked by what that model is least sure of.
    assert Item.objects.filter(project=cast.project, priority__gt=0).exists()


def test_people_replace_weak_labels_and_a_redelivered_chunk_changes_nothing(cast):
    created, truth = items(cast.project, 60)
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    application = weak.rules_apply_request(project=cast.project)
    first, last = application.chunk_bounds[0]
    weak.rule_apply_chunk(application_id=application.pk, index=0, first=first, last=last)
    votes = RuleVote.objects.filter(project=cast.project).count()
    weak.rule_apply_chunk(application_id=application.pk, index=0, first=first, last=last)
    assert RuleVote.objects.filter(project=cast.project).count() == votes

    covered = next(w for w in WeakLabel.objects.filter(project=cast.project) if not _held_out(w.item_id))
    label = cast.labels[truth[covered.item_id]]
    agreed(cast.project, covered.item_id, label)
    sets = sets_build(project=cast.project)
    position = sets.train.item_ids.index(covered.item_id)
    assert sets.train.weak[position] is False and sets.train.answers[position].label_id == label.pk
    assert sets.train.weak_count == WeakLabel.objects.filter(project=cast.project).count() - 1
    weak.weak_labels_fit(project=cast.project)
    assert not WeakLabel.objects.filter(item_id=covered.item_id).exists()


def test_a_reliable_person_outweighs_a_conflicting_rule(cast):
    """Three people who agree with each other and with the truth, and a rule that always says
    Sports: where one person and the rule disagree, the one source model sides with the person,
    and the rule's estimated accuracy is low enough to be flagged."""
    created, truth = items(cast.project, 80)
    weak.function_save(
        project=cast.project,
        data={"name": "always-sports", "kind": "regex", "label": "Sports", "pattern": "."},
    )
    people = [cast.annotator, cast.other_annotator, cast.reviewer]
    for item in created[:60]:
        for person in people:
            annotate(cast.project, item, person, cast.labels[truth[item.pk]])
    lone = [item for item in created[60:] if truth[item.pk] != "Sports"][:10]
    for item in lone:  # one answer so far: no consensus yet, so the label model decides
        annotate(cast.project, item, cast.annotator, cast.labels[truth[item.pk]])

    weak.rules_apply_here(project=cast.project)

    for item in lone:
        assert WeakLabel.objects.get(item=item).answer.label_id == cast.labels[truth[item.pk]].pk
    rule = SourceEstimate.objects.get(project=cast.project, key="always-sports")
    person = SourceEstimate.objects.get(project=cast.project, key=str(cast.annotator.pk))
    assert rule.flagged and rule.accuracy < 0.5 < person.accuracy


def test_analysis_counts_coverage_conflicts_and_accuracy_and_marks_stale_votes(cast):
    created, truth = items(cast.project, 120)
    for item in created[:40]:
        agreed(cast.project, item, cast.labels[truth[item.pk]])
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    weak.rules_apply_here(project=cast.project)
    rows = {row["function"].name: row for row in weak_analysis.functions_analysis(project=cast.project)}
    sport = rows["sport-words"]
    fired = RuleVote.objects.filter(function=sport["function"]).count()
    assert sport["coverage"] == pytest.approx(fired / 120)
    assert sport["correct"] + sport["incorrect"] > 0 and sport["applied"]
    assert sport["empirical_accuracy"] == pytest.approx(sport["correct"] / (sport["correct"] + sport["incorrect"]))
    assert 0 <= sport["conflicts"] <= sport["overlaps"] <= sport["coverage"]

    weak.function_save(
        project=cast.project, data={**sport["function"].definition, "keywords": ["match"]}, function=sport["function"]
    )
    rows = {row["function"].name: row for row in weak_analysis.functions_analysis(project=cast.project)}
    assert rows["sport-words"]["applied"] is False


def test_preview_highlights_matches_and_measures_against_known_answers(cast):
    created, truth = items(cast.project, 100)
    for item in created[:50]:
        agreed(cast.project, item, cast.labels[truth[item.pk]])
    preview = weak_analysis.function_preview(project=cast.project, data=FUNCTIONS["labelling_functions"][2])
    assert preview.sample_size == 100 and preview.fired_count > 0
    first = preview.fired[0]
    marked = [piece for piece, highlighted in first["segments"] if highlighted]
    assert marked and all(piece.lower() in FUNCTIONS["labelling_functions"][2]["keywords"] for piece in marked)
    assert "".join(piece for piece, _ in first["segments"]) == Item.objects.get(pk=first["item_id"]).text
    assert preview.checked > 0 and preview.accuracy is not None
    with pytest.raises(ValidationError, match="bad-pattern"):
        weak_analysis.function_preview(
            project=cast.project,
            data={"name": "bad-pattern", "kind": "regex", "label": "World", "pattern": "(unclosed"},
        )


def test_imported_predictions_vote_through_an_external_function(cast):
    created, truth = items(cast.project, 30)
    lines = "\n".join(
        json.dumps({"id": item.external_id, "label": truth[item.pk], "score": 0.9 if n % 2 else 0.4})
        for n, item in enumerate(created)
    )
    assert weak.predictions_import(project=cast.project, source="partner", raw=lines) == 30
    studio = [{"id": created[0].external_id, "data": {"text": created[0].text},
               "predictions": [{"result": [{"type": "choices", "value": {"choices": ["World"]}}], "score": 0.8}]}]  # fmt: skip
    assert weak.predictions_import(project=cast.project, source="studio", raw=json.dumps(studio)) == 1
    weak.function_save(
        project=cast.project, data={"name": "partner-model", "kind": "external", "source": "partner", "threshold": 0.5}
    )
    weak.rules_apply_here(project=cast.project)
    voted = RuleVote.objects.filter(project=cast.project)
    assert voted.count() == 15
    assert all(cast.project.labels.get(pk=vote.label_id).name == truth[vote.item_id] for vote in voted)


def test_a_bad_predictions_file_names_its_rows_and_imports_nothing(cast):
    created, _ = items(cast.project, 3)
    rows = [{"id": created[0].external_id, "label": "Sports"}, {"id": "nobody", "label": "Sports"},
            {"id": created[1].external_id, "label": "Weather"}, {"id": created[2].external_id, "label": "World",
                                                                  "score": 7}]  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        weak.predictions_import(project=cast.project, source="partner", raw=json.dumps(rows))
    message = " ".join(refused.value.messages)
    assert "row 2" in message and "row 3" in message and "Weather" in message and "row 4" in message
    assert "row 1" not in message
    assert not ExternalPrediction.objects.exists()


def test_entity_functions_propose_spans_that_become_weak_labels(spans_cast):
    project = spans_cast.project
    labels = {label.name: label for label in project.labels.all()}
    text = "Maria Lopez met the board of Acme Corp in Lisbon on Monday."
    item = Item.objects.create(project=project, text=text)
    first = list(labels)[0]
    weak.function_save(
        project=project, data={"name": "names", "kind": "gazetteer", "label": first, "phrases": ["Maria Lopez"]}
    )
    weak.function_save(
        project=project, data={"name": "capitals", "kind": "regex", "label": first, "pattern": r"\bLis\w+"}
    )
    application = weak.rules_apply_here(project=project)
    assert application.state == JobState.SUCCEEDED
    label = WeakLabel.objects.get(item=item)
    assert {(part.start, part.end) for part in label.answer} == {(0, 11), (text.index("Lisbon"), text.index(" on"))}


def test_a_slow_preview_stops_at_its_deadline_and_says_how_far_it_got(cast, monkeypatch):
    items(cast.project, 300)
    monkeypatch.setattr(weak_analysis, "PREVIEW_SECONDS", 0.0)  # the deadline has passed after the first batch
    preview = weak_analysis.function_preview(project=cast.project, data=FUNCTIONS["labelling_functions"][0])
    assert preview.sample_total == 300 and preview.sample_size == weak_analysis.PREVIEW_BATCH
    assert preview.coverage == preview.fired_count / weak_analysis.PREVIEW_BATCH


def test_a_function_that_fires_on_nothing_is_applied_and_a_deleted_one_leaves_no_estimate(cast):
    items(cast.project, 20)
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    weak.function_save(
        project=cast.project, data={"name": "never", "kind": "keywords", "label": "World", "keywords": ["zyzzyva"]}
    )
    weak.rules_apply_here(project=cast.project)
    rows = {row["function"].name: row for row in weak_analysis.functions_analysis(project=cast.project)}
    assert rows["never"]["applied"] and rows["never"]["coverage"] == 0
    sport = LabellingFunction.objects.get(project=cast.project, name="sport-words")
    assert SourceEstimate.objects.filter(project=cast.project, key="sport-words").exists()
    weak.function_delete(function=sport)
    assert not SourceEstimate.objects.filter(project=cast.project, key="sport-words").exists()


def test_a_renamed_label_carries_its_functions_and_a_label_in_use_is_not_deleted(cast):
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    label_update(label=cast.labels["Sports"], data={"name": "Sport"})
    sport = LabellingFunction.objects.get(project=cast.project, name="sport-words")
    assert sport.definition["label"] == "Sport" and sport.version == 2
    with pytest.raises(ValidationError, match="1 labelling function,"):
        label_delete(label=cast.labels["Sports"])
    weak.function_delete(function=sport)
    label_delete(label=cast.labels["Sports"])


def test_weak_labels_download_as_json_lines_marked_weak(cast):
    created, truth = items(cast.project, 40)
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    weak.rules_apply_here(project=cast.project)
    lines = [json.loads(line) for line in weak_analysis.weak_labels_jsonl(project=cast.project)]
    assert len(lines) == WeakLabel.objects.filter(project=cast.project).count() > 0
    first = lines[0]
    assert first["weak"] is True and first["label"] in cast.labels and 0 < first["confidence"] <= 1
    assert first["text"] == Item.objects.get(pk=first["item"]).text and first["id"].startswith("news-")
    assert set(first["posteriors"]) <= set(cast.labels)


def test_an_application_whose_worker_died_fitting_is_resumed_by_the_sweep(
    cast, settings, django_capture_on_commit_callbacks
):
    created, _ = items(cast.project, 30)
    weak.functions_import(project=cast.project, raw=json.dumps(FUNCTIONS))
    application = weak.rules_apply_request(project=cast.project)
    # The one chunk is applied and counted, then its worker dies before the label model is fitted.
    functions = list(LabellingFunction.objects.filter(project=cast.project))
    weak.votes_compute(cast.project, functions, [item.pk for item in created])
    assert weak._chunk_done(application.pk, 0, {})
    stale = timezone.now() - timedelta(seconds=settings.QUORUM_JOB_STALE_SECONDS + 5)
    RuleApplication.objects.filter(pk=application.pk).update(heartbeat_at=stale)
    assert RuleApplication.objects.get(pk=application.pk).resume_messages() == [
        ("learning.rule_application_fit", (application.pk,))
    ]

    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover()["resumed"] == 1

    application.refresh_from_db()
    assert application.state == JobState.SUCCEEDED
    assert application.summary["weak_labels"] == WeakLabel.objects.filter(project=cast.project).count() > 0
