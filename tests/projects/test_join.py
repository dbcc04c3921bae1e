"""Join links, sign-ups through them, external workers' accounts and bulk invitations
(apps/projects/services.py): what each changes in the database, and what a closed link
leaves alone."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.projects import services
from apps.projects.models import JoinLink, Membership, Role
from apps.projects.selectors import LinkState, join_link_state
from platform.errors import Conflict
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

STRONG = "plum-harbour-47-lantern"


def link_for(cast, **fields) -> JoinLink:
    return services.join_link_create(project=cast.project, by=cast.manager, **fields)


def url_of(link: JoinLink) -> str:
    return f"https://quorum.example/join/{link.token}/"


# --- links ---------------------------------------------------------------------------------------


def test_a_new_link_is_open_for_annotators_with_a_secret_token_and_a_code(cast):
    link = link_for(cast, name="Prolific batch 3", max_uses=20, worker_id_param="PROLIFIC_PID")

    link.refresh_from_db()
    assert link.role == Role.ANNOTATOR and link.uses == 0 and link.created_by == cast.manager
    assert len(link.token) >= 32 and link.completion_code
    assert join_link_state(link) == LinkState.ACTIVE


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expires_at"),
        ({"worker_id_param": "PROLIFIC PID"}, "worker_id_param"),
        ({"worker_id_param": "1abc"}, "worker_id_param"),
        ({"max_uses": 0}, "max_uses"),
    ],
)
def test_a_link_with_a_bad_setting_is_refused(cast, fields, field):
    with pytest.raises(ValidationError) as refused:
        link_for(cast, **fields)

    assert field in refused.value.message_dict
    assert not JoinLink.objects.exists()


def test_revoking_keeps_the_first_time_and_the_members(cast):
    link = link_for(cast)
    joined = services.join_link_use(link=link, user=UserFactory())
    first = services.join_link_revoke(link=link).revoked_at

    again = services.join_link_revoke(link=link)

    assert again.revoked_at == first is not None
    assert Membership.objects.filter(pk=joined.membership.pk).exists()


# --- joining -------------------------------------------------------------------------------------


def test_joining_makes_an_annotator_and_counts_one_use(cast):
    link = link_for(cast)
    newcomer = UserFactory()

    joined = services.join_link_use(link=link, user=newcomer)

    assert joined.created
    membership = Membership.objects.get(project=cast.project, user=newcomer)
    assert membership.role == Role.ANNOTATOR and membership.join_link == link
    assert JoinLink.objects.get(pk=link.pk).uses == 1


def test_a_member_joining_again_changes_nothing(cast):
    link = link_for(cast, max_uses=1)

    joined = services.join_link_use(link=link, user=cast.reviewer)

    assert not joined.created and joined.membership.role == Role.REVIEWER
    assert joined.membership.join_link is None
    assert JoinLink.objects.get(pk=link.pk).uses == 0


def _closed(cast, reason: str) -> JoinLink:
    link = link_for(cast, max_uses=1)
    if reason == LinkState.REVOKED:
        services.join_link_revoke(link=link)
    elif reason == LinkState.EXPIRED:
        JoinLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        services.join_link_use(link=link, user=UserFactory(username="first"))
    link.refresh_from_db()
    return link


@pytest.mark.parametrize("reason", [LinkState.REVOKED, LinkState.EXPIRED, LinkState.USED_UP])
def test_a_closed_link_refuses_with_its_reason_and_changes_nothing(cast, reason):
    link = _closed(cast, reason)
    members, uses = Membership.objects.count(), link.uses

    with pytest.raises(services.JoinClosed) as refused:
        services.join_link_use(link=link, user=UserFactory(username="late"))

    assert refused.value.reason == reason
    assert str(refused.value) == LinkState.MESSAGES[reason]
    assert Membership.objects.count() == members
    assert JoinLink.objects.get(pk=link.pk).uses == uses


def test_the_maximum_counts_people_not_attempts(cast):
    link = link_for(cast, max_uses=2)
    first, second = UserFactory(), UserFactory()
    services.join_link_use(link=link, user=first)
    services.join_link_use(link=link, user=first)  # a member again: not a use
    services.join_link_use(link=link, user=second)

    with pytest.raises(services.JoinClosed):
        services.join_link_use(link=link, user=UserFactory())

    assert JoinLink.objects.get(pk=link.pk).uses == 2
    assert Membership.objects.filter(join_link=link).count() == 2


def test_a_stale_copy_of_a_link_cannot_pass_the_maximum(cast):
    """The count is checked in the UPDATE itself, not on the instance a request loaded."""
    link = link_for(cast, max_uses=1)
    stale = JoinLink.objects.get(pk=link.pk)
    services.join_link_use(link=link, user=UserFactory())

    with pytest.raises(services.JoinClosed) as refused:
        services.join_link_use(link=stale, user=UserFactory())

    assert refused.value.reason == LinkState.USED_UP
    assert JoinLink.objects.get(pk=link.pk).uses == 1


# --- signing up ----------------------------------------------------------------------------------


def test_signing_up_makes_an_account_with_its_password_and_joins(cast):
    link = link_for(cast)

    joined = services.account_create_by_link(link=link, username=" ada ", password=STRONG, email="Ada@Example.org")

    user = User.objects.get(username="ada")
    assert user.check_password(STRONG) and user.email == "Ada@example.org"
    assert joined.created and joined.membership.user == user and joined.membership.join_link == link


@pytest.mark.parametrize(
    ("username", "password", "email", "field"),
    [
        ("ada", "password", "", "password"),  # common
        ("ada", "12345678901", "", "password"),  # all digits
        ("ada", "short", "", "password"),
        ("ANNOTATOR", STRONG, "", "username"),  # taken, in another case
        ("ada lovelace", STRONG, "", "username"),  # a space
        ("a" * 151, STRONG, "", "username"),
        ("", STRONG, "", "username"),
        ("ada", STRONG, "annotator@example.com", "email"),  # another account's address
        ("ada", STRONG, "not-an-address", "email"),
    ],
)
def test_a_sign_up_that_breaks_a_rule_makes_nothing(cast, username, password, email, field):
    link = link_for(cast)
    users = User.objects.count()

    with pytest.raises(ValidationError) as refused:
        services.account_create_by_link(link=link, username=username, password=password, email=email)

    assert field in refused.value.message_dict
    assert User.objects.count() == users
    assert JoinLink.objects.get(pk=link.pk).uses == 0


def test_a_sign_up_on_a_link_that_closed_meanwhile_leaves_no_account(cast):
    link = _closed(cast, LinkState.USED_UP)
    users = User.objects.count()

    with pytest.raises(services.JoinClosed):
        services.account_create_by_link(link=link, username="ada", password=STRONG)

    assert User.objects.count() == users


# --- external workers ------------------------------------------------------------------------------


def test_a_worker_gets_a_passwordless_account_in_the_project_once(cast):
    link = link_for(cast, worker_id_param="PROLIFIC_PID")

    first = services.worker_account_for_link(link=link, worker_id="5f3a9c1e2b")
    again = services.worker_account_for_link(link=link, worker_id="5f3a9c1e2b")

    user = first.membership.user
    assert first.created and not again.created and again.membership == first.membership
    assert user.username == "prolific_pid-5f3a9c1e2b" and not user.has_usable_password()
    assert first.membership.external_worker_id == "5f3a9c1e2b" and first.membership.join_link == link
    assert JoinLink.objects.get(pk=link.pk).uses == 1


def test_a_worker_account_belongs_to_one_project(cast):
    """Knowing one project's link and a worker id never opens the worker's other projects."""
    link = link_for(cast, worker_id_param="workerId")
    other = services.join_link_create(project=cast.other_project, by=cast.outsider, worker_id_param="workerId")

    here = services.worker_account_for_link(link=link, worker_id="A1B2C3")
    there = services.worker_account_for_link(link=other, worker_id="A1B2C3")

    assert here.membership.user != there.membership.user
    assert there.membership.user.username.startswith("workerid-A1B2C3-")


def test_a_worker_username_never_takes_an_existing_account(cast):
    UserFactory(username="workerid-a1")
    link = link_for(cast, worker_id_param="workerId")

    joined = services.worker_account_for_link(link=link, worker_id="A1")

    assert joined.membership.user.username != "workerid-a1"
    assert User.objects.filter(username__iexact="workerid-a1").count() == 1


@pytest.mark.parametrize("worker_id", ["", "a b", "<script>", "x" * 201, "-abc", "abc/def", "ab\u00e9"])
def test_a_bad_worker_id_is_refused_and_makes_nothing(cast, worker_id):
    link = link_for(cast, worker_id_param="workerId")
    users = User.objects.count()

    with pytest.raises(ValidationError):
        services.worker_account_for_link(link=link, worker_id=worker_id)

    assert User.objects.count() == users


def test_the_longest_worker_id_makes_a_valid_username(cast):
    link = link_for(cast, worker_id_param="workerId")

    joined = services.worker_account_for_link(link=link, worker_id="W" * 200)

    user = joined.membership.user
    user.full_clean()
    assert joined.membership.external_worker_id == "W" * 200


def test_a_worker_account_given_a_password_signs_in_only_with_it(cast):
    link = link_for(cast, worker_id_param="workerId")
    user = services.worker_account_for_link(link=link, worker_id="A1").membership.user
    user.set_password(STRONG)
    user.save()

    with pytest.raises(Conflict):
        services.worker_account_for_link(link=link, worker_id="A1")


def test_a_sign_up_link_takes_no_worker_id(cast):
    with pytest.raises(ValidationError):
        services.worker_account_for_link(link=link_for(cast), worker_id="A1")


# --- bulk invitations ----------------------------------------------------------------------------


def test_entries_are_split_and_each_kept_once():
    entries = services.invite_entries(raw="ada@example.org, Grace@example.org;\nlinus  ada@EXAMPLE.org\n\n")

    assert entries == ["ada@example.org", "Grace@example.org", "linus"]


def test_too_many_entries_are_refused():
    with pytest.raises(ValidationError):
        services.invite_entries(raw=" ".join(f"p{n}@example.org" for n in range(services.INVITE_MAX_ENTRIES + 1)))


def test_inviting_adds_known_people_and_mails_a_personal_link_to_new_addresses(
    cast, django_capture_on_commit_callbacks
):
    colleague = UserFactory(username="colleague", email="colleague@example.org")
    shared = ProjectFactory()
    MembershipFactory(project=shared, user=cast.manager, role=Role.MANAGER)
    MembershipFactory(project=shared, user=colleague)
    stranger = UserFactory(username="stranger", email="stranger@example.org")  # shares no project

    with django_capture_on_commit_callbacks(execute=True):  # the e-mails go out after commit
        report = services.members_invite(
            project=cast.project,
            by=cast.manager,
            entries=["colleague", "new@example.org", "annotator", "nobody", "stranger@example.org"],
            join_url=url_of,
        )

    assert report.added == ["colleague"]
    assert report.invited == ["new@example.org", "stranger@example.org"]
    assert report.already == ["annotator"] and report.unknown == ["nobody"]
    assert Membership.objects.get(project=cast.project, user=colleague).role == Role.ANNOTATOR
    assert not Membership.objects.filter(project=cast.project, user=stranger).exists()
    invitations = JoinLink.objects.filter(project=cast.project, name__startswith="Invitation:")
    assert invitations.count() == 2
    assert all(link.max_uses == 1 and link.expires_at > timezone.now() + timedelta(days=13) for link in invitations)
    assert sorted(message.to[0] for message in mail.outbox) == ["new@example.org", "stranger@example.org"]
    message = next(message for message in mail.outbox if message.to == ["new@example.org"])
    link = invitations.get(name="Invitation: new@example.org")
    assert url_of(link) in message.body and "News" in message.subject


def test_an_invitation_revoked_before_it_was_sent_is_not_sent(cast):
    link = link_for(cast, max_uses=1)
    services.join_link_revoke(link=link)

    services.invitation_send(link_id=link.pk, inviter_id=cast.manager.pk, address="x@example.org", url=url_of(link))

    assert mail.outbox == []


def test_one_worker_id_has_one_account_in_a_project_even_through_two_links(cast):
    link = link_for(cast, worker_id_param="PROLIFIC_PID")
    joined = services.worker_account_for_link(link=link, worker_id="abc123")
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(
            project=cast.project, user=cast.outsider, role="annotator", external_worker_id="abc123"
        )
    assert Membership.objects.get(project=cast.project, external_worker_id="abc123") == joined.membership
