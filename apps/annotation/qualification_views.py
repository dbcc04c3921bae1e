"""The qualification test and the practice items, in the workspace's look (the rules are in
apps/annotation/qualification.py). The labelling page sends a newcomer here while they
must take the test or practise.

Plain forms, post then redirect, one item at a time: the workspace script runs in its
"edit" mode here (label keys and Enter work, the form posts as it is), since nothing is
leased ahead. Every page shows the caller's own test and practice answers only: no URL
names another person's attempt.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.projects import selectors as project_selectors
from apps.projects.answers import LabelIndex
from apps.projects.selectors import ANNOTATE
from platform.errors import Conflict
from platform.html import AuthenticatedRequest, refusal_message

from . import presentation, qualification
from .forms import submitted_value


@login_required
@require_http_methods(["GET", "POST"])
def qualification_page(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """GET: the next item of the test under way, or where the person stands. POST: start
    an attempt (the first, or a retry)."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    if request.method == "POST":
        try:
            qualification.qualification_start(project=project, annotator=request.user)
        except Conflict as error:
            messages.error(request, refusal_message(error))
        return redirect("annotation:qualification", project_id=project.pk)
    labels = LabelIndex.for_project(project)
    context = presentation.qualification_context(project=project, annotator=request.user, labels=labels)
    if not context["state"].step:
        return redirect("annotation:workspace", project_id=project.pk)
    return render(request, "annotation/qualification.html", context)


@login_required
@require_POST
def qualification_submit(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    try:
        qualification.qualification_answer(
            project=project,
            annotator=request.user,
            item_id=request.POST.get("item"),
            value=submitted_value(request.POST, project),
        )
    except (ValidationError, Conflict) as error:
        messages.error(request, f"Not saved: {refusal_message(error)}")
    return redirect("annotation:qualification", project_id=project.pk)


@login_required
@require_GET
def practice_page(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    """The person's next practice item; once training is over, the labelling page."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    item = None
    if qualification.crowd_stage(project=project, annotator=request.user) == qualification.Stage.TRAINING:
        item = qualification.practice_item_next(project=project, annotator=request.user)
    if item is None:
        return redirect("annotation:workspace", project_id=project.pk)
    labels = LabelIndex.for_project(project)
    context = presentation.practice_context(project=project, annotator=request.user, labels=labels, item=item)
    return render(request, "annotation/practice.html", context)


@login_required
@require_POST
def practice_submit(request: AuthenticatedRequest, project_id: int) -> HttpResponse:
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    try:
        answer = qualification.practice_answer(
            project=project,
            annotator=request.user,
            item_id=request.POST.get("item"),
            value=submitted_value(request.POST, project),
        )
    except (ValidationError, Conflict) as error:
        messages.error(request, f"Not saved: {refusal_message(error)}")
        return redirect("annotation:practice", project_id=project.pk)
    return redirect("annotation:practice_feedback", project_id=project.pk, item_id=answer.item_id)


@login_required
@require_GET
def practice_feedback(request: AuthenticatedRequest, project_id: int, item_id: int) -> HttpResponse:
    """The right answer beside the person's own practice answer; anyone else's is a 404."""
    project = project_selectors.project_get_for_user(user=request.user, project_id=project_id, roles=ANNOTATE)
    answer = qualification.practice_answer_get(project=project, annotator=request.user, item_id=item_id)
    labels = LabelIndex.for_project(project)
    context = presentation.practice_feedback_context(project=project, labels=labels, practice=answer)
    return render(request, "annotation/practice.html", context)
