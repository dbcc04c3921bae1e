"""What projects tells the apps above it (annotation, learning), which subscribe to these
signals in their ``receivers.py``, which Django's autodiscovery imports at start-up
(``ProjectsConfig.ready``).

Projects is the bottom app and imports neither of them. Where one of its writes or pages
needs their part (their rows that point at labels, their figures on the overview), it
sends one of these signals and their receivers act or answer. Django returns each
receiver's answer from ``send()``; each signal below says when it is sent, with which
keyword arguments, and what a receiver returns.
"""

from typing import Any

from django.dispatch import Signal

# project_delete, inside its transaction, before the project row goes. Answers point at
# labels with on_delete=PROTECT, so the apps that keep answers delete theirs first.
# kwargs: project. Returns nothing.
project_deleting = Signal()

# How many answers (and rules that vote for it) use a label, or (label=None) any label of
# the project: label_usage and project_update (the task type is fixed once answers exist)
# ask it. kwargs: project, label (or None). Returns {"annotations": 12}: what, and how many.
answers_counted = Signal()

# label_update, after a label's name changed. kwargs: project, label, old_name. Returns
# nothing (learning's labelling functions name their label, and follow the rename).
label_renamed = Signal()

# import_job_run, after an import's items are committed. kwargs: project, job.
# Returns nothing (learning embeds the new items in the background).
items_imported = Signal()

# The overview page, for the viewer's role. kwargs: project, user, counts (items per
# state). Returns a dict of template context for the page's sections of that app.
overview_shown = Signal()

# The projects list, where people land. kwargs: user, projects (theirs, each with its
# user_role). Returns a dict of template context (annotation: "my_work", a row per project
# where they annotate, and "my_work_ids", those projects' ids, which the list leaves out).
home_shown = Signal()

# The item page. kwargs: project, item. Returns a dict of template context.
item_shown = Signal()

# items_list, when the items page or API filters on answers. kwargs: project, filters (a
# selectors.AnswerFilters). Returns a Q on Item that keeps the items matching the filters
# that app answers for (annotation: consensus label and confidence, disagreement,
# suggestion, annotator).
items_filtering = Signal()

# The items page, for the items of one page. kwargs: project, items, labels (a LabelIndex).
# Returns {item id: dict of template context for that item's row}.
items_listed = Signal()

# The members page (managers). kwargs: project. Returns a dict of template context: what
# that app knows of each member, by user id (annotation: the qualification test's results),
# and notices for the manager.
members_shown = Signal()


def responses(signal: Signal, **kwargs: Any) -> list[Any]:
    """Send ``signal`` and return what each receiver answered, in the order they connected."""
    return [answer for _, answer in signal.send(sender=None, **kwargs)]
