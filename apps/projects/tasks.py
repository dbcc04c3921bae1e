from celery import shared_task

from .imports import import_job_run


@shared_task(name="projects.import_job")
def import_job_task(job_id: int) -> None:
    """Run one import. Redelivery is harmless: the service finishes a job only once."""
    import_job_run(job_id=job_id)
