"""Reads for projects and items, and the one permission gate every view goes through."""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.expressions import RawSQL
from django.http import Http404
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.timesince import timesince

from . import events
from .answers import Answer, LabelPart
from .jobs import JobState
from .models import ImportJob, Item, ItemState, JoinLink, Label, Membership, Project, Role

# Who may do what. A manager may do everything a reviewer may.
MANAGE = frozenset({Role.MANAGER})
REVIEW = frozenset({Role.MANAGER, Role.REVIEWER})
ANNOTATE = frozenset({Role.MANAGER, Role.ANNOTATOR})
ANY_MEMBER = frozenset(Role)


def _projects_with_role(user: User | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    # The annotation fills Project.user_role, the attribute the gate sets (django-stubs
    # takes an annotation over a declared attribute for a clash, hence the ignores).
    if user.is_superuser:
        # Site admins act as managers of every project.
        return Project.objects.annotate(user_role=Value(Role.MANAGER.value))  # type: ignore[no-redef]
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).order_by().values("role")[:1]
    return Project.objects.annotate(user_role=Subquery(role)).filter(  # type: ignore[no-redef,misc]
        user_role__isnull=False
    )


def project_get_for_user(
    *, user: User | AnonymousUser, project_id: Any, roles: Collection[str] = ANY_MEMBER
) -> Project:
    """The project, with ``user_role`` and ``user_blocked`` set, if the user may act on it
    in one of ``roles``.

    Someone who is not a member gets a 404, as if the project did not exist (ids are
    not secrets, but membership is); a member without the role gets a 403.
    """
    try:
        project_id = int(project_id)
    except (TypeError, ValueError):
        raise Http404("No such project.") from None
    # Ids are 64-bit: a larger number names no project (and SQLite could not even bind it).
    if not 0 < project_id < 2**63:
        raise Http404("No such project.")
    if not user.is_authenticated:
        raise Http404("No such project.")
    role: str | None
    if user.is_superuser:
        # Site admins act as managers of every project.
        project = Project.objects.filter(pk=project_id).first()
        role, blocked = Role.MANAGER.value, False
    else:
        # One indexed join on every request: this gate guards each view and API call.
        membership = Membership.objects.select_related("project").filter(project_id=project_id, user=user).first()
        project = membership.project if membership else None
        role, blocked = (membership.role, membership.is_blocked) if membership else (None, False)
    if project is None:
        raise Http404("No such project.")
    project.user_role, project.user_blocked = role, blocked
    if role not in roles:
        raise PermissionDenied("Your role in this project does not allow this.")
    return project


def project_get(*, project_id: int) -> Project | None:
    """A project by id, for workers (which act for no user); None when it is gone."""
    return Project.objects.filter(pk=project_id).first()


def projects_for_user(*, user: User | AnonymousUser) -> QuerySet[Project]:
    return (
        _projects_with_role(user)
        .annotate(
            item_count=Count("items", distinct=True),
            label_count=Count("labels", distinct=True),
        )
        .order_by("-created_at", "-id")
    )


def project_item_counts(*, project: Project) -> dict[str, int]:
    counts = {state: 0 for state in ItemState.values}
    for row in Item.objects.filter(project=project).values("state").annotate(n=Count("id")).order_by():
        counts[row["state"]] = row["n"]
    counts["total"] = sum(counts[state] for state in ItemState.values)
    counts["gold"] = Item.objects.filter(project=project, is_gold=True).count()
    return counts


def project_labels(*, project: Project) -> list[Label]:
    return list(project.labels.all())


def item_sample(*, project: Project) -> str:
    """A text of the project to show labels beside (the first item that is not gold)."""
    text = Item.objects.filter(project=project, is_gold=False).order_by("id").values_list("text", flat=True).first()
    return text or ""


def label_get(*, project: Project, label_id: Any) -> Label:
    try:
        return Label.objects.get(project=project, pk=int(label_id))
    except (Label.DoesNotExist, TypeError, ValueError):
        raise Http404("No such label in this project.") from None


def membership_get(*, project: Project, membership_id: Any) -> Membership:
    try:
        return Membership.objects.select_related("user", "project").get(project=project, pk=int(membership_id))
    except (Membership.DoesNotExist, TypeError, ValueError):
        raise Http404("No such member in this project.") from None


def project_members(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("role", "user__username")


def project_annotator_names(*, project: Project) -> list[str]:
    """Usernames of the members who may answer (managers and annotators), for filters."""
    members = Membership.objects.filter(project=project, role__in=ANNOTATE).order_by("user__username")
    return list(members.values_list("user__username", flat=True))


def account_find(*, identifier: str, by: User | None) -> User | None:
    """The active account with this username or e-mail (either case) that ``by`` may add to a
    project: anyone for a site admin or a trusted caller (``by`` None: a command), otherwise
    only someone who already shares a project with ``by``. So a manager cannot probe which
    usernames or addresses have an account on the site: strangers and the absent look alike."""
    identifier = identifier.strip()
    accounts = User.objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier), is_active=True)
    if by is not None and not by.is_superuser:
        accounts = accounts.filter(memberships__project__memberships__user=by)
    return accounts.order_by("pk").first()


# --- joining by link (docs/crowd.md) ---------------------------------------------------------


class LinkState:
    """Whether a join link still lets people in, and if not, why."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    USED_UP = "used_up"

    MESSAGES = {
        REVOKED: "This join link was turned off by the project's managers.",
        EXPIRED: "This join link has expired.",
        USED_UP: "This join link has been used as many times as it may be.",
    }


def join_link_state(link: JoinLink, now: Any = None) -> str:
    """Revoked wins over expired, and expired over used up: the reason a person can act on."""
    now = now or timezone.now()
    if link.revoked_at is not None:
        return LinkState.REVOKED
    if link.expires_at is not None and link.expires_at <= now:
        return LinkState.EXPIRED
    if link.max_uses is not None and link.uses >= link.max_uses:
        return LinkState.USED_UP
    return LinkState.ACTIVE


def join_link_by_token(*, token: str) -> JoinLink:
    """The link a token names, with its project; an unknown token is a 404."""
    link = JoinLink.objects.select_related("project").filter(token=token[:64]).first()
    if link is None:
        raise Http404("This join link does not exist. Check that you copied the whole address.")
    return link


def join_link_get(*, project: Project, link_id: Any) -> JoinLink:
    try:
        return JoinLink.objects.get(project=project, pk=int(link_id))
    except (JoinLink.DoesNotExist, TypeError, ValueError):
        raise Http404("No such join link in this project.") from None


def join_links(*, project: Project) -> QuerySet[JoinLink]:
    """The project's links, newest first."""
    return JoinLink.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-id")


def membership_of(*, project: Project, user: User | AnonymousUser) -> Membership | None:
    """The user's membership in the project, with the link they joined through."""
    if not user.is_authenticated:
        return None
    return Membership.objects.select_related("join_link").filter(project=project, user=user).first()


def membership_of_worker(*, project: Project, worker_id: str) -> Membership | None:
    """The member an external platform's worker id belongs to in this project. Worker
    accounts are per project: knowing one project's link never opens another's."""
    return (
        Membership.objects.select_related("user")
        .filter(project=project, external_worker_id=worker_id)
        .order_by("pk")
        .first()
    )


# The orders a list of items may take: by id (oldest first) or newest first. Only these:
# an ordering named by a client never reaches order_by unchecked.
ITEM_ORDERINGS = ("id", "-id")


@dataclass(frozen=True)
class AnswerFilters:
    """Filters of the items list on what people answered. Projects keeps no answers: the
    apps above turn these into conditions on items (``events.items_filtering``)."""

    label_id: int | None = None  # the consensus (or the reviewer's final answer) has this label
    confidence_below: float | None = None  # the consensus is less sure than this
    disagreement: bool = False  # the item's answers are not all the same
    suggestion: bool | None = None  # it has a suggestion (True) or none (False)
    annotator: str = ""  # this username answered it

    def __bool__(self) -> bool:
        return self != AnswerFilters()


def items_list(
    *,
    project: Project,
    query: str = "",
    state: str = "",
    gold: str = "",
    label_id: int | None = None,
    answers: AnswerFilters | None = None,
    ordering: str = "id",
) -> QuerySet[Item]:
    """Items of a project, filtered. Ordered by id so pages are stable; every filter is
    backed by an index on (project, filter, id). Filters on ``answers`` come from the apps
    that keep them, as conditions on items (each a subquery on an indexed column)."""
    if ordering not in ITEM_ORDERINGS:
        raise ValueError(f"Items cannot be ordered by {ordering!r}.")
    items = Item.objects.filter(project=project)
    if answers:
        for condition in events.responses(events.items_filtering, project=project, filters=answers):
            items = items.filter(condition)
    if state in ItemState.values:
        items = items.filter(state=state)
    if gold in ("yes", "no"):
        items = items.filter(is_gold=(gold == "yes"))
    if label_id is not None:
        items = items.filter(gold_labels__label_id=label_id).distinct()
    query = query.strip()
    if query:
        items = items.filter(_text_contains(query) | Q(external_id=query))
    return items.order_by(ordering)


def _text_contains(query: str) -> Q:
    """Items whose text contains ``query``, ignoring case. On PostgreSQL the side table
    ``projects_item_search`` carries the trigram index (migration 0005 says why)."""
    if connection.vendor != "postgresql":
        return Q(text__icontains=query)
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    matches = RawSQL("SELECT item_id FROM projects_item_search WHERE UPPER(text) LIKE UPPER(%s)", [pattern])
    return Q(pk__in=matches)


def item_get(*, project: Project, item_id: Any) -> Item:
    """An item of this project; ids of other projects' items are a 404, never a leak."""
    try:
        return Item.objects.prefetch_related("gold_labels").get(project=project, pk=int(item_id))
    except (Item.DoesNotExist, TypeError, ValueError):
        raise Http404("No such item in this project.") from None


def gold_answers(*, project: Project, item_ids: Iterable[int] | None = None) -> dict[int, Answer]:
    """The gold answer of each gold item of the project (or of these items), by item id,
    in one query (a gold item may rightly have an empty answer)."""
    gold_items = Item.objects.filter(project=project, is_gold=True)
    if item_ids is not None:
        gold_items = gold_items.filter(pk__in=list(item_ids))
    parts: dict[int, list[LabelPart]] = {}
    rows = gold_items.values_list("pk", "gold_labels__start", "gold_labels__end", "gold_labels__label_id")
    for item_id, start, end, label_id in rows.order_by():
        parts.setdefault(item_id, [])
        if label_id is not None:
            parts[item_id].append(LabelPart(start, end, label_id))
    return {item_id: Answer(item_parts) for item_id, item_parts in parts.items()}


def import_job_get(*, project: Project, job_id: Any) -> ImportJob:
    try:
        return ImportJob.objects.get(project=project, pk=int(job_id))
    except (ImportJob.DoesNotExist, TypeError, ValueError):
        raise Http404("No such import in this project.") from None


def import_jobs(*, project: Project) -> QuerySet[ImportJob]:
    return ImportJob.objects.filter(project=project).select_related("created_by")


def import_jobs_recent(*, project: Project, limit: int = 10) -> QuerySet[ImportJob]:
    return import_jobs(project=project)[:limit]


def import_progress(*, job: ImportJob) -> dict[str, Any]:
    """How far an import is: a percentage, a phase and, for people, a stage. A running
    import's worker writes this to the shared cache, because its database writes stay
    invisible until the import commits as a whole. ``health`` says when its worker stopped
    (``stalled``) or no worker has taken it for a while (``delayed``, see apps/projects/jobs.py)."""
    if job.is_finished:
        rows = job.rows_imported or job.rows_total
        if job.state == JobState.SUCCEEDED:
            stage = f"{job.rows_imported:,} items imported"
            if job.started_at and job.finished_at:
                seconds = (job.finished_at - job.started_at).total_seconds()
                took = f"{seconds:.1f} s" if seconds < 60 else timesince(job.started_at, job.finished_at)
                stage += f" in {took}"
        else:
            stage = f"{job.error_count:,} problem{pluralize(job.error_count)} found"
        return {"phase": job.state, "percent": 100, "rows": rows, "stage": stage, "health": ""}
    # A queued job starts over: what a worker that died wrote in the cache is not its progress.
    cached = cache.get(import_progress_key(job.pk)) if job.state == JobState.RUNNING else None
    progress = cached or {"phase": job.state, "fraction": 0.0, "rows": 0}
    # Reading (and checking) the file and writing the items are each half of the work.
    half = 50 if progress["phase"] == "writing" else 0
    percent = min(99, half + int(progress["fraction"] * 50))
    stage = ""
    if progress["phase"] in ("reading", "writing"):
        doing = "Writing items" if progress["phase"] == "writing" else "Checking rows"
        stage = f"{doing} · {progress['rows']:,} rows · {percent}%"
    return {**progress, "percent": percent, "stage": stage, "health": job.health}


def import_progress_key(job_id: int) -> str:
    return f"quorum:import-progress:{job_id}"
