from apps.annotation.models import Annotation
from apps.annotation.simulation import SimulatedAnnotator, simulate_crowd
from apps.projects.services import project_update
from tests.factories import ItemFactory


def test_simulated_annotators_answer_at_their_accuracy(cast):
    project_update(project=cast.project, data={"gold_ratio": 0.0, "overlap": 2})
    items = [ItemFactory(project=cast.project) for _ in range(200)]
    truth = {item.pk: "Sports" for item in items}
    crowd = [
        SimulatedAnnotator(cast.annotator, 1.0, skip_rate=0.0),
        SimulatedAnnotator(cast.other_annotator, 0.5, skip_rate=0.0),
    ]

    given = simulate_crowd(project=cast.project, annotators=crowd, truth=truth, answers=300)

    assert given == 300
    careful = Annotation.objects.filter(annotator=cast.annotator)
    careless = Annotation.objects.filter(annotator=cast.other_annotator)
    assert all(a.labels.get().label.name == "Sports" for a in careful)
    right = sum(a.labels.get().label.name == "Sports" for a in careless)
    assert 0.35 < right / careless.count() < 0.65
