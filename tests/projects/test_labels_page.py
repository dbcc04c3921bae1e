"""The labels page: every label in one form with one save. Either every row is saved or
none is, with the reason under each wrong row and what was typed kept; a live preview
shows the workspace with the labels and instructions as typed."""

import uuid

import pytest

from apps.annotation.models import Annotation, AnnotationLabel
from apps.projects.models import Label, Project
from apps.projects.services import LabelRow, LabelRowsRefused, label_create, labels_save
from tests.factories import ItemFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def form_data(cast, changes=None, new=None, instructions=None):
    """The form as the page sends it: a row per label in order (with ``changes`` by label
    name), then the new-label row (``new``, or left empty)."""
    labels = list(cast.project.labels.all())
    data = {
        "labels-TOTAL_FORMS": str(len(labels) + 1),
        "labels-INITIAL_FORMS": str(len(labels)),
        "labels-MIN_NUM_FORMS": "0",
        "labels-MAX_NUM_FORMS": "1000",
        "instructions": cast.project.instructions if instructions is None else instructions,
    }
    for i, label in enumerate(labels):
        row = {"id": label.pk, "name": label.name, "color": label.color, "key": label.key,
               "description": label.description, "position": i + 1}  # fmt: skip
        row.update((changes or {}).get(label.name, {}))
        data.update({f"labels-{i}-{field}": value for field, value in row.items() if value is not None})
    row = {"name": "", "color": "#0891b2", "key": "", "description": "", "position": len(labels) + 1, **(new or {})}
    data.update({f"labels-{len(labels)}-{field}": value for field, value in row.items()})
    return data


def post(cast, data, **headers):
    return client_for(cast.manager).post(f"/projects/{cast.project.pk}/labels/", data, **headers)


def state(cast):
    return [(label.name, label.color, label.key) for label in Label.objects.filter(project=cast.project)]


def use(cast, label):
    item = ItemFactory(project=cast.project)
    annotation = Annotation.objects.create(
        project=cast.project, item=item, annotator=cast.annotator, submission_id=uuid.uuid4()
    )
    AnnotationLabel.objects.create(annotation=annotation, label=label)


def test_one_save_changes_every_row_adds_one_and_deletes_one(cast):
    data = form_data(
        cast,
        changes={
            "World": {"name": "International", "position": 2},
            "Sports": {"color": "#ABCDEF", "key": "s", "position": 1},
            "Business": {"description": "Companies and markets"},
            "Science": {"delete": "on"},
        },
        new={"name": "Health", "key": ""},
        instructions="Pick the **main** topic.",
    )

    response = post(cast, data)

    assert response.status_code == 302
    assert state(cast) == [
        ("Sports", "#abcdef", "s"),
        ("International", "#2563eb", "1"),
        ("Business", "#dc2626", "3"),
        ("Health", "#0891b2", "2"),  # the next free key
    ]
    assert Label.objects.get(project=cast.project, name="Business").description == "Companies and markets"
    assert Project.objects.get(pk=cast.project.pk).instructions == "Pick the **main** topic."


def test_nothing_is_saved_when_one_row_is_wrong_and_the_typed_rows_stay(cast):
    before = state(cast)
    data = form_data(
        cast,
        changes={"World": {"name": "Global"}, "Sports": {"name": "Business"}, "Science": {"key": "!"}},
        instructions="Changed",
    )

    response = post(cast, data, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="ontology">')
    assert state(cast) == before and Project.objects.get(pk=cast.project.pk).instructions == ""
    assert "Nothing was saved" in html
    assert html.count("Another label already has the name “business”") == 2  # both rows that say Business
    assert "Use one lower-case letter or digit." in html
    assert 'value="Global"' in html and "Changed</textarea>" in html  # what was typed is kept
    assert html.index("Global") < html.index("Use one lower-case letter")  # errors sit under their rows


def test_two_labels_may_swap_names_and_keys_in_one_save(cast):
    data = form_data(cast, changes={"World": {"name": "Sports", "key": "2"}, "Sports": {"name": "World", "key": "1"}})

    post(cast, data)

    world, sports = cast.labels["World"], cast.labels["Sports"]
    world.refresh_from_db(), sports.refresh_from_db()
    assert (world.name, world.key, sports.name, sports.key) == ("Sports", "2", "World", "1")


def test_a_label_in_use_is_not_deleted_and_nothing_else_changes(cast):
    use(cast, cast.labels["Science"])
    data = form_data(cast, changes={"Science": {"delete": "on"}, "World": {"name": "Global"}})

    html = post(cast, data, **HTMX).content.decode()

    assert "is used by 1 annotation, so it cannot be deleted" in html
    assert Label.objects.filter(project=cast.project, name="Science").exists()
    assert not Label.objects.filter(project=cast.project, name="Global").exists()


def test_an_empty_new_row_is_left_out_and_a_half_filled_one_needs_a_name(cast):
    before = state(cast)

    unchanged = post(cast, form_data(cast))
    half = post(cast, form_data(cast, new={"description": "something"}), **HTMX)

    assert unchanged.status_code == 302 and state(cast) == before
    assert "Give the label a name" in half.content.decode() and state(cast) == before


def test_a_rename_keeps_the_answers_that_chose_the_label(cast):
    use(cast, cast.labels["World"])

    post(cast, form_data(cast, changes={"World": {"name": "Global"}}))

    assert AnnotationLabel.objects.get().label.name == "Global"


def test_labels_added_since_the_page_opened_are_kept_last(cast):
    data = form_data(cast, changes={"World": {"position": 4}, "Science": {"position": 1}})
    label_create(project=cast.project, name="Health")  # someone else, meanwhile

    post(cast, data)

    names = list(Label.objects.filter(project=cast.project).values_list("name", flat=True))
    assert names == ["Science", "Sports", "Business", "World", "Health"]


def test_a_label_deleted_meanwhile_is_said_not_saved(cast):
    data = form_data(cast, changes={"World": {"name": "Global"}})
    cast.labels["Science"].delete()

    html = post(cast, data, **HTMX).content.decode()

    assert "no longer in the project" in html and not Label.objects.filter(name="Global").exists()


def test_the_service_names_the_wrong_rows(cast):
    rows = [LabelRow(label.pk, label.name, label.color, label.key) for label in cast.project.labels.all()]
    rows[2] = LabelRow(rows[2].label_id, "World", "#123456", "9")

    with pytest.raises(LabelRowsRefused) as refused:
        labels_save(project=cast.project, rows=rows)

    assert set(refused.value.rows) == {0, 2} and "name" in refused.value.rows[2]


def test_a_reviewer_sees_the_labels_without_the_form(cast):
    html = client_for(cast.reviewer).get(f"/projects/{cast.project.pk}/labels/").content.decode()

    assert "World" in html and 'id="labels-form"' not in html and "What annotators see" not in html


# --- the preview ------------------------------------------------------------------------------


def test_the_preview_shows_the_rows_and_instructions_as_typed_and_saves_nothing(cast):
    ItemFactory(project=cast.project, text="The striker scored twice in the final.")
    before = state(cast)
    data = form_data(
        cast,
        changes={"World": {"name": "Global", "color": "#111111"}, "Sports": {"key": "1"}, "Science": {"delete": "on"}},
        new={"name": "Health", "key": "h"},
        instructions="Pick the **main** topic.",
    )

    response = client_for(cast.manager).post(f"/projects/{cast.project.pk}/labels/preview/", data, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and state(cast) == before
    assert "<strong>main</strong>" in html and "The striker scored twice" in html
    assert html.index("Global") < html.index("Sports") < html.index("Business") < html.index("Health")
    assert "Science" not in html and "--chip: #111111; --chip-text: #fff" in html.replace("#ffffff", "#fff")
    assert "The key <kbd>1</kbd> is on more than one label" in html


def test_the_preview_warns_of_a_name_given_twice(cast):
    data = form_data(cast, changes={"World": {"name": "sports"}})

    html = client_for(cast.manager).post(f"/projects/{cast.project.pk}/labels/preview/", data).content.decode()

    assert "2 labels are named “sports” (in any case): only one can be." in html


def test_the_page_carries_the_preview_of_the_saved_labels(cast):
    html = client_for(cast.manager).get(f"/projects/{cast.project.pk}/labels/").content.decode()

    preview = html[html.index('id="label-preview"') :]
    assert "What annotators see" in html and "<kbd>1</kbd><span>World</span>" in preview
    assert f'hx-post="/projects/{cast.project.pk}/labels/preview/"' in html
