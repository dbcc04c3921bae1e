from celery import shared_task

from .consolidation import consolidation_run


@shared_task(name="annotation.consolidation_run")
def consolidation_run_task(run_id: int) -> None:
    """Run one queued consolidation; a redelivered message finds it claimed and stops."""
    consolidation_run(run_id=run_id)
