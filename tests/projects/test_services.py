import uuid

import pytest
from django.core.exceptions import ValidationError

from apps.annotation.models import Annotation, AnnotationLabel
from apps.projects.models import GoldLabel, Label, Membership, Project, Role, TaskType
from apps.projects.services import (
    label_create,
    label_delete,
    label_update,
    labels_reorder,
    membership_add,
    membership_remove,
    membership_set_role,
    project_create,
    project_update,
)
from tests.factories import ItemFactory, UserFactory


def annotate(cast, item, user, label):
    annotation = Annotation.objects.create(project=cast.project, item=item, annotator=user, submission_id=uuid.uuid4())
    AnnotationLabel.objects.create(annotation=annotation, label=label)
    return annotation


# --- projects ------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_a_project_makes_the_creator_its_manager_and_adds_labels():
    user = UserFactory()

    project = project_create(user=user, name="Topics", overlap=5, labels=[{"name": "A"}, {"name": "B"}])

    assert Membership.objects.get(project=project).role == Role.MANAGER
    labels = list(project.labels.all())
    assert [(label.name, label.key, label.order) for label in labels] == [("A", "1", 0), ("B", "2", 1)]
    assert labels[0].color != labels[1].color
    assert project.overlap == 5


@pytest.mark.django_db
def test_project_settings_are_validated_and_nothing_is_saved_when_they_are_wrong():
    with pytest.raises(ValidationError) as error:
        project_create(user=UserFactory(), name="Bad", overlap=0, gold_ratio=1.5)

    assert {"overlap", "gold_ratio"} <= set(error.value.message_dict)
    assert not Project.objects.exists()


@pytest.mark.django_db
def test_creating_a_project_with_a_duplicate_label_creates_nothing():
    with pytest.raises(ValidationError):
        project_create(user=UserFactory(), name="Dup", labels=[{"name": "Yes"}, {"name": "yes"}])

    assert not Project.objects.exists()


def test_a_project_with_gold_and_annotations_can_be_deleted(cast):
    from apps.projects.services import project_delete

    item = ItemFactory(project=cast.project, is_gold=True)
    GoldLabel.objects.create(item=item, label=cast.labels["World"])
    annotate(cast, item, cast.annotator, cast.labels["Sports"])

    project_delete(project=cast.project)

    assert not Project.objects.filter(pk=cast.project.pk).exists()
    assert not Annotation.objects.exists() and not Label.objects.filter(project_id=cast.project.pk).exists()


def test_task_type_can_change_before_any_answer(cast):
    project_update(project=cast.project, data={"task_type": TaskType.MULTI_LABEL})

    cast.project.refresh_from_db()
    assert cast.project.task_type == TaskType.MULTI_LABEL


def test_task_type_is_fixed_once_annotations_exist(cast):
    annotate(cast, ItemFactory(project=cast.project), cast.annotator, cast.labels["World"])

    with pytest.raises(ValidationError, match="task type cannot change"):
        project_update(project=cast.project, data={"task_type": TaskType.SPANS, "name": "Renamed"})

    cast.project.refresh_from_db()
    assert (cast.project.task_type, cast.project.name) == (TaskType.SINGLE_LABEL, "News")


def test_task_type_is_fixed_once_gold_items_exist(cast):
    ItemFactory(project=cast.project, is_gold=True)

    with pytest.raises(ValidationError):
        project_update(project=cast.project, data={"task_type": TaskType.MULTI_LABEL})


# --- labels -------------------------------------------------------------------------


def test_new_labels_get_the_next_free_key_and_go_last(cast):
    label = label_create(project=cast.project, name="Health")

    assert (label.key, label.order) == ("5", 4)


def test_label_keys_and_names_are_unique_within_a_project(cast):
    with pytest.raises(ValidationError, match="already uses that key"):
        label_create(project=cast.project, name="Health", key="1")
    with pytest.raises(ValidationError, match="already has a label with that name"):
        label_create(project=cast.project, name="  world ")

    assert cast.project.labels.count() == 4
    # Another project may reuse the name and the key ("3" is Business here).
    assert label_create(project=cast.other_project, name="World", key="3").pk


def test_label_keys_must_be_one_letter_or_digit(cast):
    with pytest.raises(ValidationError):
        label_create(project=cast.project, name="Health", key="#")


def test_renaming_a_label_keeps_the_answers_that_use_it(cast):
    item = ItemFactory(project=cast.project, is_gold=True)
    GoldLabel.objects.create(item=item, label=cast.labels["World"])
    annotation = annotate(cast, item, cast.annotator, cast.labels["World"])

    label_update(label=cast.labels["World"], data={"name": "International", "color": "#ABCDEF"})

    renamed = Label.objects.get(pk=cast.labels["World"].pk)
    assert (renamed.name, renamed.color) == ("International", "#abcdef")
    assert annotation.labels.get().label.name == "International"
    assert item.gold_labels.get().label.name == "International"


def test_a_rename_onto_another_labels_name_is_refused(cast):
    with pytest.raises(ValidationError):
        label_update(label=cast.labels["World"], data={"name": "Sports"})

    assert Label.objects.get(pk=cast.labels["World"].pk).name == "World"


def test_a_label_in_use_cannot_be_deleted(cast):
    item = ItemFactory(project=cast.project, is_gold=True)
    GoldLabel.objects.create(item=item, label=cast.labels["World"])
    annotate(cast, item, cast.annotator, cast.labels["World"])
    annotate(cast, item, cast.other_annotator, cast.labels["World"])

    with pytest.raises(ValidationError) as error:
        label_delete(label=cast.labels["World"])

    assert "used by 2 annotations and 1 gold item" in error.value.messages[0]
    assert Label.objects.filter(pk=cast.labels["World"].pk).exists()


def test_an_unused_label_can_be_deleted(cast):
    label_delete(label=cast.labels["Science"])

    assert list(cast.project.labels.values_list("name", flat=True)) == ["World", "Sports", "Business"]


def test_reordering_needs_every_label_once(cast):
    ids = [label.pk for label in cast.project.labels.all()]

    labels_reorder(project=cast.project, label_ids=list(reversed(ids)))
    assert [label.pk for label in cast.project.labels.all()] == list(reversed(ids))

    with pytest.raises(ValidationError):
        labels_reorder(project=cast.project, label_ids=ids[:2])
    with pytest.raises(ValidationError):
        labels_reorder(project=cast.project, label_ids=[*ids[:3], cast.other_project.labels.first().pk])


# --- memberships --------------------------------------------------------------------


def test_members_are_added_by_username_or_email(cast):
    newcomer = UserFactory(username="newcomer", email="new@example.com")

    membership = membership_add(project=cast.project, user_identifier="NEW@example.com", role=Role.REVIEWER)

    assert (membership.user, membership.role) == (newcomer, Role.REVIEWER)


def test_adding_an_unknown_or_existing_member_is_refused(cast):
    with pytest.raises(ValidationError, match="No one in your projects"):
        membership_add(project=cast.project, user_identifier="ghost", role=Role.ANNOTATOR)
    with pytest.raises(ValidationError, match="already a member"):
        membership_add(project=cast.project, user_identifier="annotator", role=Role.MANAGER)

    assert Membership.objects.get(project=cast.project, user=cast.annotator).role == Role.ANNOTATOR


def test_a_manager_finds_only_people_who_share_a_project_with_them(cast):
    """Strangers and accounts that do not exist are refused alike, so a manager cannot probe
    which usernames or e-mail addresses have an account on the site."""
    UserFactory(username="stranger", email="stranger@example.com")
    colleague = UserFactory(username="colleague")
    second = project_create(user=cast.manager, name="Second", labels=[{"name": "A"}])
    membership_add(project=second, user_identifier="colleague", role=Role.ANNOTATOR)

    refusals = []
    for who in ("stranger", "STRANGER@example.com", "ghost", "outsider"):
        with pytest.raises(ValidationError) as refused:
            membership_add(project=cast.project, user_identifier=who, role=Role.ANNOTATOR, by=cast.manager)
        refusals.append(refused.value.message_dict["user"][0].replace(f"“{who}”", "“…”"))
    added = membership_add(project=cast.project, user_identifier="colleague", role=Role.ANNOTATOR, by=cast.manager)

    assert len(set(refusals)) == 1 and "No one in your projects" in refusals[0]
    assert added.user == colleague
    assert not Membership.objects.filter(project=cast.project, user__username__in=["stranger", "outsider"]).exists()


def test_a_site_admin_finds_any_account(cast):
    stranger = UserFactory(username="stranger")
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)

    membership = membership_add(project=cast.project, user_identifier="stranger", role=Role.REVIEWER, by=admin)

    assert Membership.objects.get(pk=membership.pk).user == stranger


def test_the_last_manager_cannot_leave_or_step_down(cast):
    manager = Membership.objects.get(project=cast.project, user=cast.manager)

    with pytest.raises(ValidationError):
        membership_set_role(membership=manager, role=Role.ANNOTATOR)
    with pytest.raises(ValidationError):
        membership_remove(membership=manager)

    assert Membership.objects.get(pk=manager.pk).role == Role.MANAGER


def test_a_manager_can_step_down_once_another_manager_exists(cast):
    reviewer = Membership.objects.get(project=cast.project, user=cast.reviewer)
    membership_set_role(membership=reviewer, role=Role.MANAGER)

    membership_remove(membership=Membership.objects.get(project=cast.project, user=cast.manager))

    assert not Membership.objects.filter(project=cast.project, user=cast.manager).exists()
