from celery import shared_task

from .imports import import_job_run
from .jobs import jobs_recover
from .services import invitation_send


@shared_task(name="projects.import_job")
def import_job_task(job_id: int) -> None:
    """Run one import. Redelivery is harmless: only the holder of the job imports."""
    import_job_run(job_id=job_id)


@shared_task(name="projects.jobs_sweep")
def jobs_sweep_task() -> dict[str, int]:
    """Resume or fail every job whose worker is gone, and send again lost messages, for
    every kind of job (every worker runs it at start and on a timer; beat may too)."""
    return jobs_recover()


@shared_task(name="projects.invitation_send")
def invitation_send_task(link_id: int, inviter_id: int, address: str, url: str) -> None:
    """E-mail one personal join link. Not retried: a failure is in the worker's log, and the
    link is on the members page, where the manager can copy it and send it another way."""
    invitation_send(link_id=link_id, inviter_id=inviter_id, address=address, url=url)
