"""HTML pages for projects: list, create, overview, settings, labels, members, items,
import and export. Views are thin: the gate, a form, a service call, a template.
With htmx a view renders just the named partial that changed; without JavaScript
every link and form still works as a plain page load."""

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from platform.html import AuthenticatedRequest, form_add_service_error, render_page

from . import events, imports, presentation, selectors, services
from .answers import Answer, LabelIndex
from .forms import ImportForm, LabelForm, MemberAddForm, MemberRoleForm, ProjectCreateForm, ProjectSettingsForm
from .models import LABEL_PALETTE, ItemState, Project, Role
from .rendering import markdown_to_html
from .selectors import ANNOTATE, ANY_MEMBER, MANAGE, REVIEW

ITEMS_PER_PAGE = 50
SEARCH_COUNT_CAP = 10_000


@login_required
@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    projects = selectors.projects_for_user(user=request.user)
    return render(
        request,
        "projects/home.html",
        {"projects": projects, "can_create": request.user.has_perm("projects.add_project")},
    )


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
    request: AuthenticatedRequest, project: Project, form: LabelForm | None = None, errors: list[str] | None = None
) -> HttpResponse:
    labels = selectors.project_labels(project=project)
    context = {
        "project": project,
        "labels": labels,
        "form": form or LabelForm(initial={"color": LABEL_PALETTE[len(labels) % len(LABEL_PALETTE)]}),
        "errors": errors or [],
        "can_edit": project.user_role == Role.MANAGER,
    }
    return render_page(request, "projects/labels.html", context, partial="ontology")


@login_required
@require_http_methods(["GET", "POST"])
def labels(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The ontology editor. GET: everyone in the project sees the labels; POST (manager): add one."""
    roles = MANAGE if request.method == "POST" else ANY_MEMBER
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=roles)
    if request.method == "GET":
        return _labels_page(request, project)
    form = LabelForm(request.POST)
    if form.is_valid():
        # An empty key on the add form asks for the next free key.
        data = {**form.cleaned_data, "key": form.cleaned_data["key"] or None}
        try:
            label = services.label_create(project=project, **data)
        except ValidationError as error:
            form_add_service_error(form, error)
        else:
            messages.success(request, f"Label “{label.name}” added.")
            if not request.htmx:
                return redirect("projects:labels", project_id=project.pk)
            return _labels_page(request, project)
    return _labels_page(request, project, form=form)


@login_required
@require_POST
def label_update(request: AuthenticatedRequest, project_id: int, label_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    label = selectors.label_get(project=project, label_id=label_id)
    form = LabelForm(request.POST)
    errors: list[str] = []
    if form.is_valid():
        try:
            services.label_update(label=label, data=form.cleaned_data)
        except ValidationError as error:
            errors = [f"{label.name}: {message}" for message in error.messages]
        else:
            messages.success(request, f"Label “{label.name}” saved.")
    else:
        errors = [f"{label.name}: {field} – {' '.join(str(m) for m in e)}" for field, e in form.errors.items()]
    if not request.htmx:
        for error_text in errors:
            messages.error(request, error_text)
        return redirect("projects:labels", project_id=project.pk)
    return _labels_page(request, project, errors=errors)


@login_required
@require_POST
def label_delete(request: AuthenticatedRequest, project_id: int, label_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    label = selectors.label_get(project=project, label_id=label_id)
    errors: list[str] = []
    try:
        services.label_delete(label=label)
    except ValidationError as error:
        errors = error.messages
    else:
        messages.success(request, f"Label “{label.name}” deleted.")
    if not request.htmx:
        for error_text in errors:
            messages.error(request, error_text)
        return redirect("projects:labels", project_id=project.pk)
    return _labels_page(request, project, errors=errors)


@login_required
@require_POST
def label_move(request: AuthenticatedRequest, project_id: int, label_id: int) -> HttpResponse:
    """Move a label one place up or down in the ontology."""
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=MANAGE)
    label = selectors.label_get(project=project, label_id=label_id)
    ids = [each.pk for each in selectors.project_labels(project=project)]
    position = ids.index(label.pk)
    target = position - 1 if request.POST.get("direction") == "up" else position + 1
    if 0 <= target < len(ids):
        ids[position], ids[target] = ids[target], ids[position]
        services.labels_reorder(project=project, label_ids=ids)
    if not request.htmx:
        return redirect("projects:labels", project_id=project.pk)
    return _labels_page(request, project)


def _members_page(request: AuthenticatedRequest, project: Project, form: MemberAddForm | None = None) -> HttpResponse:
    context = {
        "project": project,
        "members": selectors.project_members(project=project),
        "form": form or MemberAddForm(),
        "roles": Role.choices,
    }
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


@login_required
@require_GET
def items(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = selectors.project_get_for_user(user=request.user, project_id=project_id, roles=REVIEW)
    filters = {
        "q": request.GET.get("q", "").strip()[:200],
        "state": request.GET.get("state", ""),
        "gold": request.GET.get("gold", ""),
    }
    queryset = selectors.items_list(project=project, query=filters["q"], state=filters["state"], gold=filters["gold"])
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
    query = urlencode({key: value for key, value in filters.items() if value})
    context = {
        "project": project,
        "page": page_obj,
        "filters": filters,
        "filter_query": query,
        "states": ItemState.choices,
        "counts": counts,
        "count_capped": count_capped,
    }
    return render_page(request, "projects/items.html", context, partial="item-table")


def _known_item_count(counts: dict[str, int], filters: dict[str, str]) -> int | None:
    """The number of items a filter selects, when the per-state counts already tell it."""
    if filters["q"] or filters["gold"] and filters["state"]:
        return None
    if filters["gold"]:
        return counts["gold"] if filters["gold"] == "yes" else counts["total"] - counts["gold"]
    if filters["state"]:
        return counts.get(filters["state"]) if filters["state"] in ItemState.values else counts["total"]
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
