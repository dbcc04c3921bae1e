"""Large pools are ranked in chunks that workers score in parallel; the outcome must not
depend on how the pool was cut."""

import pytest

from apps.annotation.models import Suggestion
from apps.learning import ranking, services, training
from apps.learning.models import PoolRanking
from apps.learning.ranking import pool_ids, pool_rank, pool_rank_chunk, pool_rank_start
from apps.projects.jobs import JobState
from apps.projects.models import Item
from apps.projects.services import project_update


def trained(project):
    run = services.training_request(project=project)
    return training.training_run_execute(run_id=run.pk).version


def order_by_priority(project):
    return list(Item.objects.filter(pk__in=pool_ids(project)).order_by("-priority", "pk").values_list("pk", flat=True))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(ranking, "CHUNK", 25)  # the fixture's 80 open items make four chunks


@pytest.mark.parametrize("strategy", ["margin", "committee"])
def test_chunked_ranking_orders_the_pool_as_one_pass_does(
    labelled_project, small_chunks, django_capture_on_commit_callbacks, strategy
):
    project_update(project=labelled_project, data={"sampling_strategy": strategy})
    trained(labelled_project)
    pool_rank(project=labelled_project)
    whole = order_by_priority(labelled_project)
    lifted_whole = set(Item.objects.filter(pk__in=whole, priority__gt=1).values_list("pk", flat=True))
    Item.objects.filter(project=labelled_project).update(priority=0)
    Suggestion.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        started = pool_rank_start(project=labelled_project)

    ranked = PoolRanking.objects.first()  # the newest; the one training started was superseded
    assert started == {"ranked": 0, "chunks": 4}
    assert ranked.state == JobState.SUCCEEDED and ranked.chunks_done == [0, 1, 2, 3] and ranked.progress == 100
    assert order_by_priority(labelled_project) == whole
    assert set(Item.objects.filter(pk__in=whole, priority__gt=1).values_list("pk", flat=True)) == lifted_whole
    assert Suggestion.objects.filter(item__project=labelled_project).count() == 80


def test_a_redelivered_chunk_is_counted_once(labelled_project, small_chunks):
    trained(labelled_project)  # its ranking waits in four chunks: no worker took them
    ids = pool_ids(labelled_project)
    ranking_row = PoolRanking.objects.get(project=labelled_project)

    pool_rank_chunk(ranking_id=ranking_row.pk, index=0, first=ids[0], last=ids[24])
    pool_rank_chunk(ranking_id=ranking_row.pk, index=0, first=ids[0], last=ids[24])
    ranking_row.refresh_from_db()
    assert ranking_row.chunks_done == [0] and ranking_row.state == JobState.RUNNING and ranking_row.progress == 25

    for index, (first, last) in enumerate([(25, 49), (50, 74), (75, 79)], start=1):
        pool_rank_chunk(ranking_id=ranking_row.pk, index=index, first=ids[first], last=ids[last])
    ranking_row.refresh_from_db()
    assert ranking_row.chunks_done == [0, 1, 2, 3] and ranking_row.state == JobState.SUCCEEDED


def test_a_newer_ranking_supersedes_a_running_one(labelled_project, small_chunks, django_capture_on_commit_callbacks):
    trained(labelled_project)  # its ranking waits: no worker took the chunks
    ids = pool_ids(labelled_project)
    older = PoolRanking.objects.get(project=labelled_project)

    with django_capture_on_commit_callbacks(execute=True):
        pool_rank_start(project=labelled_project)
    older.refresh_from_db()
    before = order_by_priority(labelled_project)
    late = pool_rank_chunk(ranking_id=older.pk, index=0, first=ids[0], last=ids[24])

    assert older.state == JobState.CANCELLED and "Superseded" in older.error
    assert late == {"ranked": 0} and order_by_priority(labelled_project) == before


def test_whole_pool_strategies_rank_in_one_pass(labelled_project, small_chunks):
    project_update(project=labelled_project, data={"sampling_strategy": "diversity"})
    trained(labelled_project)

    result = pool_rank_start(project=labelled_project)

    ranking = PoolRanking.objects.first()  # the newest: one chunk, the whole pool, in this process
    assert result["ranked"] == 80 and ranking.chunks_total == 1 and ranking.state == JobState.SUCCEEDED


def test_the_learning_page_shows_the_ranking_progress(labelled_project, small_chunks, cast):
    from tests.helpers import client_for

    trained(labelled_project)  # its ranking waits: no worker took the chunks

    page = client_for(cast.reviewer).get(f"/projects/{labelled_project.pk}/learning/?part=runs", HTTP_HX_REQUEST="true")

    assert page.status_code == 200 and b'id="pool-ranking"' in page.content
    assert b"0 of 4 chunks done" in page.content and b"every 2s" in page.content
