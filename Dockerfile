# Quorum's web and worker image (production settings).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=platform.settings.prod QUORUM_VAR_DIR=/data HF_HUB_OFFLINE=1

WORKDIR /app
COPY requirements.txt .
# The CPU build of torch: PyPI's default Linux wheel carries CUDA (several GB).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY . .
# collectstatic needs settings to load; the key here is thrown away with the build step.
RUN SECRET_KEY=collectstatic-only-$(python -c "import secrets; print(secrets.token_hex(32))") \
    ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
    && useradd --create-home quorum && mkdir -p /data && chown quorum /data

USER quorum
EXPOSE 8000
# `python -m` keeps /app first on sys.path, where Quorum's `platform` package lives.
CMD ["python", "-m", "gunicorn", "platform.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
