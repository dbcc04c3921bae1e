# Quorum: `make demo` runs the site on this machine; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The install stamp carries a hash of requirements.txt, so changed pins reinstall.
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
PG_URL ?= postgres://postgres@127.0.0.1:5432/quorum
REDIS ?= redis://127.0.0.1:6379

.PHONY: install demo test test-sqlite test-services chromium vendor check audit

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_load
	$(PY) manage.py demo_serve

# Browser tests drive Debian's Chromium (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install chromium check audit test-sqlite test-services

test-sqlite: install
	$(PY) -m pytest

# The same suite on PostgreSQL and Redis, whenever both answer on their usual ports.
test-services: install
	@if $(PY) -c "import socket; [socket.create_connection(('127.0.0.1', p), 2).close() for p in (5432, 6379)]" 2>/dev/null; then \
		echo "PostgreSQL and Redis answer: running the suite on them too"; \
		DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS)/14 REDIS_URL=$(REDIS)/15 $(PY) -m pytest; \
	else \
		echo "PostgreSQL or Redis is not running: skipped the suite on them"; \
	fi

# bandit on apps/ and platform/ (fails on any finding not accepted with a reason) and pip-audit
# on the installed requirements (says NOT AUDITED when no vulnerability service answers).
audit: install
	VENV=$(VENV) bash .ci/audit

check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(PY) -m mypy
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

# Refresh static/vendor from the npm registry at the versions pinned in package.json.
vendor:
	npm ci --no-audit --no-fund
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx-2.0.11.min.js
	cp node_modules/chart.js/dist/chart.umd.min.js static/vendor/chart-4.6.1.umd.min.js
	cp node_modules/modern-normalize/modern-normalize.css static/vendor/modern-normalize-3.0.1.css
