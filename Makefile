# The two commands: `make run` (install, train if needed, start everything) and
# `make test` (install, then every check). `.ci/run` calls `make test`.

PYTHON ?= python3.10
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WEB_STAMP := web/node_modules/.installed

# No telemetry leaves the machine; TensorFlow keeps its start-up chatter to itself.
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

ifneq (,$(wildcard .env))
include .env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' .env)
endif

.PHONY: run cluster test checks install train chat db lint types unit validate e2e browser stories bench bench-identity bench-cases bench-channels bench-cluster bench-console bench-words nginx clean

run: install
	$(BIN)/python -m bot.launcher run

# Two rasa servers and two action servers (which the rasa servers reach through nginx),
# the console, the chat page and the worker; nginx on one public port (CLUSTER_PORT,
# 8000); state in PostgreSQL and Redis
# (DATABASE_URL, REDIS_URL; by default the local servers). Debian's nginx is installed
# when missing and root (bot/cluster.py, docs/deploy.md).
cluster: install nginx
	$(BIN)/python -m bot.cluster

# Debian's nginx, installed when missing and root (`make cluster`, `make bench-cluster`).
nginx:
	@test -x /usr/sbin/nginx || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; }

chat: install
	$(BIN)/python -m bot.chat

install: $(STAMP) $(WEB_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==24.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The website chat's npm packages exactly as web/package-lock.json pins them
# (socket.io-client, served by the product; playwright-core, which drives the browser
# tests and downloads no browser). Again whenever the lock file changes.
$(WEB_STAMP): web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

# Create or upgrade the app database and load the demo members (`make run` does it too).
db: install
	$(BIN)/python -m bot.db upgrade --demo

train: install
	$(BIN)/python -m bot.launcher train

# Training is the longest job (703 s alone here) and leaves about a quarter of the two
# cores idle; the checks need about 5 CPU-minutes and no model. So they run beside
# training at a lower priority (CHECKS_NICE), taking what training leaves instead of
# slowing it (777 s beside them in CI; 941-962 s at equal priority), and the end-to-end
# tests and stories start as soon as the model is trained, whether or not the checks
# are done. Each target's output is printed whole when it ends.
test: install
	$(MAKE) --no-print-directory -j6 --output-sync=target CHECKS_NICE="nice -n 10" \
		checks e2e stories
	@echo "make test: all checks passed"

checks: lint types unit validate

lint: install
	$(CHECKS_NICE) $(BIN)/ruff check .
	$(CHECKS_NICE) $(BIN)/ruff format --check .

types: install
	$(CHECKS_NICE) $(BIN)/mypy

unit: install
	$(CHECKS_NICE) $(BIN)/python -m pytest -m "not e2e"

validate: install
	$(CHECKS_NICE) $(BIN)/rasa data validate --fail-on-warnings

# Most of the end-to-end time is servers loading the model (about 30 s each, one core),
# so two pytest workers, a test file each at a time, halve it on two cores (7.8 -> 4.6
# min here). Two, not one per core: each worker starts its own servers (1.3 GB each).
# After `train`: workers that both found no model would both train it.
e2e: train browser
	$(BIN)/python -m pytest -m e2e -n 2 --dist loadfile

# Debian's chromium for the website chat's browser tests, a Japanese font so that
# their screenshots are readable, and nginx for the public-edge test (deploy/nginx/).
# CI runs as root and gets them installed; elsewhere, without root, those tests skip
# (and fail under PRIVACY_BOT_REQUIRE_BROWSER=1).
browser:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing=" chromium"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	fc-list :lang=ja 2>/dev/null | grep -q . || missing="$$missing fonts-ipafont-gothic"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "ブラウザのテストに必要な$$missing がありません（root で apt-get install$$missing）。"; \
	fi

stories: train
	$(BIN)/python -m bot.launcher test-stories

bench: install
	$(BIN)/python -m bench

# Verification lookups on 100,000 members (SQLite and PostgreSQL) and the REST round
# trip of a whole verification dialog against FAQ dialogs, on fresh servers.
bench-identity: train
	$(BIN)/python -m bench.lookup
	$(BIN)/python -m bench.verification_dialog

# Case creation and listings with 100,000 members and 1,000,000 cases against 1,000
# cases (SQLite and PostgreSQL); see docs/cases.md.
bench-cases: install
	$(BIN)/python -m bench.cases

# 200 LINE webhook deliveries (to a loopback stand-in for the LINE API) and 50 concurrent
# website-chat sessions, the REST channel as baseline, on fresh servers (bench/channels.py).
bench-channels: train
	$(BIN)/python -m bench.channels

# `make cluster` with one replica, then two, behind nginx on PostgreSQL and Redis db 11:
# 40 concurrent conversations (turns/s, latency, CPU per process), 200 LINE deliveries as
# one burst, 20 verification codes by SMS; errors and duplicates (bench/cluster.py).
# Then the LINE burst at the edge alone (nginx and the intake, cold and on kept
# connections, Redis db 13: bench/line_edge.py).
bench-cluster: train nginx
	$(BIN)/python -m bench.cluster
	$(BIN)/python -m bench.line_edge

# The staff console's queue and transcript pages with 10,000 escalations and 1,000,000
# Rasa tracker events against 100 escalations and 10,000 events (SQLite and
# PostgreSQL), on the real console server (bench/console.py). No trained model needed.
bench-console: install
	$(BIN)/python -m bench.console

# The members' words development set (bench/data/members_words.yml, never trained on):
# the trained NLU alone (intent accuracy, also on the holdout), then every question
# through REST with the action server restarted per organization (bench/members_words.py).
bench-words: train
	$(BIN)/python -m bench.members_words --offline --holdout
	$(BIN)/python -m bench.members_words

# One member's 150 FAQ questions in one REST conversation, without and with the session
# turn limit (SESSION_TURN_LIMIT), on the SQL tracker store on SQLite and PostgreSQL: the
# median turn time per 10 turns and last/first (bench/long_conversation.py).
.PHONY: bench-long
bench-long: train
	$(BIN)/python -m bench.long_conversation

clean:
	rm -rf models results var/bench .rasa
