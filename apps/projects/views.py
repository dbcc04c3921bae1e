"""HTML pages for projects: list, create, overview, settings, labels, members, items,
import and export. Views are thin: the gate, a form, a service call, a template.
With htmx a view renders just the named partial that changed; without JavaScript
every link and form still works as a plain page load."""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from platform.errors import Conflict
from platform.html import AuthenticatedRequest, form_add_service_error, refusal_message, render_page
from platform.throttles import SignUpThrottle

from . import events, forms, imports, presentation, selectors, services
from .answers import Answer, LabelIndex
from .forms import (
    ImportForm,
    InviteForm,
    JoinLinkForm,
    MemberAddForm,
    MemberRoleForm,
    ProjectCreateForm,
    ProjectSettingsForm,
    SignUpForm,
)
from .models import ItemState, JoinLink, Project, Role
from .rendering import markdown_to_html
from .selectors import ANNOTATE, ANY_MEMBER, MANAGE, REVIEW

ITEMS_PER_PAGE = 50
SEARCH_COUNT_CAP = 10_000


@login_required
@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    projects = list(selectors.projects_for_user(user=request.user))
    context: dict[str, Any] = {"can_create": request.user.has_perm("projects.add_project")}
    # An annotator's own figures per project come from the app above (annotation's receivers).
    for extra in events.responses(events.home_shown, user=request.user, projects=projects):
        context.update(extra)
    mine = context.get("my_work_ids", set())
    context["projects"] = [project for project in projects if project.pk not in mine]
    return render(request, "projects/home.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_create(request: AuthenticatedRequest) -> HttpResponse:
    if not request.user.has_perm("projects.add_project"):
        raise PermissionDenied("Your account may not create projects; ask a site admin.")
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields = {name: value for name, value in form.cleaned_data.items() if name not in ("name", "label_names")}
        try:
            project = services.project_create(
                user=request.user,
                name=form.cleaned_data["name"],
                labels=[{"name": name} for name in form.cleaned_data["label_names"]],
                **fields,
            )
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            messages.success(request, f"Project “{project.name}” created. Import items to start.")
            return redirect("projects:overview", project_id=project.pk)
    return render(request, "projects/project_create.html", {"form": form})


@login_required
@require_GET
def overview(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANY_MEMBER)
    counts = selectors.project_item_counts(project=project)
    context: dict[str, Any] = {
        "project": project,
        "counts": counts,
        "labels": selectors.project_labels(project=project),
        "instructions_html": markdown_to_html(project.instructions),
        "can_annotate": project.user_role in ANNOTATE,
    }
    if project.user_role in REVIEW:
        context.update(
            members=list(selectors.project_members(project=project)), state_chart=presentation.state_chart(counts)
        )
    if project.user_role == Role.MANAGER:
        context["imports"] = selectors.import_jobs_recent(project=project, limit=5)
    # Progress, charts and the budget come from the apps above (annotation's receivers).
    for extra in events.responses(events.overview_shown, project=project, user=request.user, counts=counts):
        context.update(extra)
    return render(request, "projects/overview.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    initial = {name: getattr(project, name) for name in services.PROJECT_EDITABLE_FIELDS}
    form = ProjectSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, data=form.cleaned_data)
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("projects:settings", project_id=project.pk)
    return render(request, "projects/settings.html", {"project": project, "form": form})


@login_required
@require_POST
def project_delete(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    if request.POST.get("confirm_name", "").strip() != project.name:
        messages.error(request, "Type the project's name exactly to delete it.")
        return redirect("projects:settings", project_id=project.pk)
    services.project_delete(project=project)
    messages.success(request, f"Project “{project.name}” deleted.")
    return redirect("projects:home")


def _labels_page(
    request: AuthenticatedRequest,
    project: Project,
    formset: forms.LabelFormSet | None = None,
    notes: forms.InstructionsForm | None = None,
) -> HttpResponse:
    """The ontology editor: every label in one form with one save, beside a preview of the
    workspace (from what was typed, when a save was refused)."""
    labels = selectors.project_labels(project=project)
    can_edit = project.user_role == Role.MANAGER
    if can_edit and formset is None:
        formset = forms.label_formset(labels=labels)
    if can_edit and notes is None:
        notes = forms.InstructionsForm(initial={"instructions": project.instructions})
    shown = formset.preview_labels() if formset is not None and formset.is_bound else labels
    instructions = notes.data.get("instructions", "") if notes is not None and notes.is_bound else project.instructions
    context = {
        "project": project,
        "labels": labels,
        "formset": formset,
        "notes": notes,
        "can_edit": can_edit,
        **presentation.label_preview(
            project=project, labels=shown, instructions=instructions, sample=selectors.item_sample(project=project)
        ),
    }
    return render_page(request, "projects/labels.html", context, partial="ontology")


@login_required
@require_http_methods(["GET", "POST"])
def labels(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The ontology editor. GET: everyone in the project sees the labels; POST (manager):
    save every row and the instructions at once, or nothing and say which rows are wrong."""
    roles = MANAGE if request.method == "POST" else ANY_MEMBER
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=roles)
    if request.method == "GET":
        return _labels_page(request, project)
    formset = forms.label_formset(labels=selectors.project_labels(project=project), data=request.POST)
    notes = forms.InstructionsForm(request.POST)
    if formset.is_valid() and notes.is_valid():
        indexes, rows = formset.rows()
        try:
            services.labels_save(project=project, rows=rows, instructions=notes.cleaned_data["instructions"])
        except services.LabelRowsRefused as refused:
            formset.refuse(refused.rows, indexes)
        else:
            messages.success(request, "Labels saved.")
            if not request.htmx:
                return redirect("projects:labels", project_id=project.pk)
            return _labels_page(request, project)
    return _labels_page(request, project, formset=formset, notes=notes)


@login_required
@require_POST
def labels_preview(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The workspace preview from the editor's unsaved rows and instructions (nothing is saved)."""
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    formset = forms.label_formset(labels=selectors.project_labels(project=project), data=request.POST)
    context = presentation.label_preview(
        project=project,
        labels=formset.preview_labels(),
        instructions=request.POST.get("instructions", ""),
        sample=selectors.item_sample(project=project),
    )
    return render(request, "projects/partials/label_preview.html", context)


def _members_page(
    request: AuthenticatedRequest,
    project: Project,
    form: MemberAddForm | None = None,
    link_form: JoinLinkForm | None = None,
    invite_form: InviteForm | None = None,
) -> HttpResponse:
    context = {
        "project": project,
        "members": selectors.project_members(project=project),
        "form": form or MemberAddForm(),
        "roles": Role.choices,
        "links": presentation.join_link_rows(selectors.join_links(project=project), _join_url(request)),
        "link_form": link_form or JoinLinkForm(),
        "invite_form": invite_form or InviteForm(),
    }
    # The apps above add what they know of each member (annotation: the qualification test).
    for extra in events.responses(events.members_shown, project=project):
        context.update(extra)
    return render_page(request, "projects/members.html", context, partial="member-list")


@login_required
@require_http_methods(["GET", "POST"])
def members(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    if request.method == "GET":
        return _members_page(request, project)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            membership = services.membership_add(
                project=project,
                user_identifier=form.cleaned_data["user"],
                role=form.cleaned_data["role"],
                by=request.user,
            )
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            messages.success(request, f"{membership.user.get_username()} joined as {membership.get_role_display()}.")
            if not request.htmx:
                return redirect("projects:members", project_id=project.pk)
            return _members_page(request, project)
    return _members_page(request, project, form=form)


@login_required
@require_POST
def member_update(request: AuthenticatedRequest, project_id: int, membership_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    membership = selectors.membership_get(project=project, membership_id=membership_id)
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        try:
            services.membership_set_role(membership=membership, role=form.cleaned_data["role"])
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display()}.")
    if not request.htmx:
        return redirect("projects:members", project_id=project.pk)
    return _members_page(request, project)


@login_required
@require_POST
def member_block(request: AuthenticatedRequest, project_id: int, membership_id: int) -> HttpResponse:
    """Block (or, with ``unblock``, unblock) a member from getting new items."""
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    membership = selectors.membership_get(project=project, membership_id=membership_id)
    name = membership.user.get_username()
    if request.POST.get("unblock"):
        services.membership_unblock(membership=membership)
        messages.success(request, f"{name} is unblocked and gets items again.")
    else:
        reason = request.POST.get("reason", "").strip() or f"Blocked by {request.user.get_username()}"
        services.membership_block(membership=membership, reason=reason)
        messages.success(request, f"{name} is blocked and gets no new items.")
    if not request.htmx:
        return redirect("projects:members", project_id=project.pk)
    return _members_page(request, project)


@login_required
@require_POST
def member_remove(request: AuthenticatedRequest, project_id: int, membership_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    membership = selectors.membership_get(project=project, membership_id=membership_id)
    try:
        services.membership_remove(membership=membership)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{membership.user.get_username()} left the project.")
    if not request.htmx:
        return redirect("projects:members", project_id=project.pk)
    return _members_page(request, project)


def _join_url(request: HttpRequest) -> Callable[[JoinLink], str]:
    """The full address of a join link, on the host this request came to (ALLOWED_HOSTS)."""
    return lambda link: request.build_absolute_uri(reverse("projects:join", args=[link.token]))


def _members_done(request: AuthenticatedRequest, project: Project) -> HttpResponse:
    if not request.htmx:
        return redirect("projects:members", project_id=project.pk)
    return _members_page(request, project)


@login_required
@require_POST
def join_link_create(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    form = JoinLinkForm(request.POST)
    if form.is_valid():
        try:
            link = services.join_link_create(project=project, by=request.user, **form.cleaned_data)
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            messages.success(request, f"Join link “{link.name or 'unnamed'}” created: copy it below.")
            return _members_done(request, project)
    return _members_page(request, project, link_form=form)


@login_required
@require_POST
def join_link_revoke(request: AuthenticatedRequest, project_id: int, link_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    link = services.join_link_revoke(link=selectors.join_link_get(project=project, link_id=link_id))
    messages.success(request, f"Join link “{link.name or 'unnamed'}” revoked; members who joined through it stay.")
    return _members_done(request, project)


@login_required
@require_POST
def members_invite(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            entries = services.invite_entries(raw=form.cleaned_data["entries"])
            report = services.members_invite(
                project=project, by=request.user, entries=entries, join_url=_join_url(request)
            )
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            _invite_messages(request, report)
            return _members_done(request, project)
    return _members_page(request, project, invite_form=form)


def _invite_messages(request: AuthenticatedRequest, report: services.InviteReport) -> None:
    if report.added:
        messages.success(request, f"Added as annotators: {', '.join(report.added)}.")
    if report.invited:
        messages.success(request, f"Invitations e-mailed to: {', '.join(report.invited)}.")
    if report.already:
        messages.info(request, f"Already members: {', '.join(report.already)}.")
    if report.unknown:
        messages.error(
            request,
            f"No one in your projects has the username {', '.join(report.unknown)}: "
            "invite them by e-mail address instead.",
        )


# --- joining by link: a public page (docs/crowd.md) --------------------------------------------


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, token: str) -> HttpResponse:
    """A join link opened. Closed links say why (410) and change nothing; with the link's
    worker id parameter in the address, the worker's account is found or made and signed
    in; a signed-in person joins at once; anyone else signs up here or logs in and comes back."""
    link = selectors.join_link_by_token(token=token)
    state = selectors.join_link_state(link)
    if state != selectors.LinkState.ACTIVE:
        return _join_closed(request, link, state)
    if link.worker_id_param and link.worker_id_param in request.GET:
        return _join_as_worker(request, link, request.GET[link.worker_id_param])
    if request.user.is_authenticated:
        return _join_signed_in(request, link)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        refusal = _sign_up_refusal(request)
        if refusal is not None:
            return refusal
        try:
            joined = services.account_create_by_link(
                link=link,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data["email"],
            )
        except ValidationError as error:
            form_add_service_error(form, error)
        except services.JoinClosed as closed:
            return _join_closed(request, link, closed.reason)
        else:
            return _signed_in_and_joined(request, joined)
    return _join_page(request, link, form)


def _join_page(request: HttpRequest, link: JoinLink, form: SignUpForm, status: int = 200, **extra: Any) -> HttpResponse:
    context = {"link": link, "project": link.project, "form": form, "login_next": request.get_full_path(), **extra}
    return render(request, "projects/join.html", context, status=status)


def _join_closed(request: HttpRequest, link: JoinLink, state: str) -> HttpResponse:
    context = {
        "project": link.project,
        "message": selectors.LinkState.MESSAGES.get(state, "This join link is closed."),
        "membership": selectors.membership_of(project=link.project, user=request.user),
    }
    return render(request, "projects/join_closed.html", context, status=410)


def _sign_up_refusal(request: HttpRequest) -> HttpResponse | None:
    """Too many accounts made from this address lately: a 429 that says when to come back."""
    throttle = SignUpThrottle()
    if throttle.allow_request(request, None):
        return None
    wait = max(1, int(throttle.wait() or 0))
    response = render(
        request,
        "projects/join_closed.html",
        {
            "title": "Too many sign-ups",
            "message": "Too many accounts were made from your network address in the last while. "
            f"Try again in {max(1, -(-wait // 60))} minutes.",
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


def _join_signed_in(request: HttpRequest, link: JoinLink) -> HttpResponse:
    """A signed-in person joins by pressing Join (a POST with its CSRF token): opening the
    link alone, which another site could make their browser do, joins nobody."""
    assert isinstance(request.user, User)  # the caller checked is_authenticated
    member = selectors.membership_of(project=link.project, user=request.user)
    if member is not None:
        messages.info(request, f"You are a member of “{link.project.name}” already.")
        return redirect("projects:overview", project_id=link.project_id)
    if request.method != "POST":
        return _join_page(request, link, SignUpForm(), confirm=True)
    try:
        joined = services.join_link_use(link=link, user=request.user)
    except services.JoinClosed as closed:
        return _join_closed(request, link, closed.reason)
    if not joined.created:
        messages.info(request, f"You are a member of “{link.project.name}” already.")
        return redirect("projects:overview", project_id=link.project_id)
    messages.success(request, f"You joined “{link.project.name}” as {joined.membership.get_role_display().lower()}.")
    return redirect("annotation:workspace", project_id=link.project_id)


def _signed_in_and_joined(request: HttpRequest, joined: services.Joined) -> HttpResponse:
    # Several backends are configured (django-axes first): name the one that holds accounts.
    login(request, joined.membership.user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, f"Welcome! You joined “{joined.membership.project.name}”.")
    return redirect("annotation:workspace", project_id=joined.membership.project_id)


def _join_as_worker(request: HttpRequest, link: JoinLink, worker_id: str) -> HttpResponse:
    """An external platform sent its worker here: sign them in to their account in this
    project (made on the first visit), then on to the work."""
    existing = selectors.membership_of_worker(project=link.project, worker_id=worker_id)
    if request.user.is_authenticated:
        if existing is not None and existing.user_id == request.user.pk:
            return redirect("annotation:workspace", project_id=link.project_id)
        # Signing someone else in would quietly swap this person's session.
        return _join_page(request, link, SignUpForm(), other_worker=worker_id)
    if existing is None:
        refusal = _sign_up_refusal(request)
        if refusal is not None:
            return refusal
    try:
        joined = services.worker_account_for_link(link=link, worker_id=worker_id)
    except services.JoinClosed as closed:
        return _join_closed(request, link, closed.reason)
    except (ValidationError, Conflict) as error:
        context = {"project": link.project, "title": "This address cannot be used", "message": refusal_message(error)}
        return render(request, "projects/join_closed.html", context, status=400)
    return _signed_in_and_joined(request, joined)


@login_required
@require_GET
def items(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    labels = LabelIndex.for_project(project)
    form = forms.ItemFilterForm(
        request.GET, labels=labels.labels, annotators=selectors.project_annotator_names(project=project)
    )
    filters = form.chosen()
    queryset = selectors.items_list(
        project=project,
        query=filters.get("q", ""),
        state=filters.get("state", ""),
        gold=filters.get("gold", ""),
        answers=form.answer_filters(),
    )
    counts = selectors.project_item_counts(project=project)
    paginator = Paginator(
        queryset.only("id", "external_id", "text", "state", "is_gold", "annotation_count"), ITEMS_PER_PAGE
    )
    known_count = _known_item_count(counts, filters)
    count_capped = False
    if known_count is not None:
        paginator.count = known_count  # spares counting 100k rows a second time
    else:
        # A search for a common word can match most of a big project; counting stops
        # at SEARCH_COUNT_CAP and the page says "10,000+".
        matches = queryset.order_by()[: SEARCH_COUNT_CAP + 1].count()
        count_capped = matches > SEARCH_COUNT_CAP
        paginator.count = min(matches, SEARCH_COUNT_CAP)
    page_obj = paginator.get_page(request.GET.get("page"))
    shown = list(page_obj.object_list)
    # What the apps above know of each item on the page (annotation: its consensus).
    answers = events.responses(events.items_listed, project=project, items=shown, labels=labels)
    context = {
        "project": project,
        "page": page_obj,
        "rows": presentation.item_rows(shown, answers),
        "form": form,
        "filters": filters,
        "filter_query": urlencode(form.query()),
        "states": ItemState.choices,
        "confidence_steps": form.CONFIDENCE_STEPS,
        "counts": counts,
        "count_capped": count_capped,
    }
    return render_page(request, "projects/items.html", context, partial="item-table")


def _known_item_count(counts: dict[str, int], filters: dict[str, Any]) -> int | None:
    """The number of items a filter selects, when the per-state counts already tell it."""
    if set(filters) - {"state", "gold"} or len(filters) > 1:
        return None
    if "gold" in filters:
        return counts["gold"] if filters["gold"] == "yes" else counts["total"] - counts["gold"]
    if "state" in filters:
        return counts[filters["state"]]
    return counts["total"]


@login_required
@require_GET
def item_detail(request: AuthenticatedRequest, project_id: int, item_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    item = selectors.item_get(project=project, item_id=item_id)
    labels = LabelIndex.for_project(project)
    gold = Answer.of_rows(item.gold_labels.all())
    context: dict[str, Any] = {
        "project": project,
        "item": item,
        "gold": presentation.answer_display(project, labels, gold, item.text) if item.is_gold else None,
        "plain_segments": [{"text": item.text, "label": None}],
        "annotations": [],
    }
    # The item's annotations come from the annotation app's receiver.
    for extra in events.responses(events.item_shown, project=project, item=item, labels=labels):
        context.update(extra)
    return render(request, "projects/item_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def import_items(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        options = {
            name: form.cleaned_data[name] for name in ("text_field", "id_field", "gold_field", "conll_tags_are_gold")
        }
        try:
            job = imports.items_import_start(
                project=project,
                user=request.user,
                upload=form.cleaned_data["file"],
                fmt=form.cleaned_data["format"],
                options=options,
            )
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            url = reverse("projects:import_detail", kwargs={"project_id": project.pk, "job_id": job.pk})
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    context = {
        "project": project,
        "form": form,
        "jobs": selectors.import_jobs_recent(project=project),
        "labels": selectors.project_labels(project=project),
    }
    return render(request, "projects/import.html", context)


@login_required
@require_GET
def import_detail(request: AuthenticatedRequest, project_id: int, job_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    job = selectors.import_job_get(project=project, job_id=job_id)
    context = {"project": project, "job": job, "progress": selectors.import_progress(job=job)}
    # The status partial polls itself while the job runs; once finished it renders
    # without the trigger, so the swap ends the polling.
    return render_page(request, "projects/import_detail.html", context, partial="job-status")
