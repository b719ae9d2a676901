# The two commands that matter: `make run` (the whole system, embedded default) and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
BUF := var/bin/buf
PY := uv run --frozen

.PHONY: run test install install-test lint typecheck proto buf seed schema bench bench-discovery bench-orders bench-persisted grpcurl clean

run: install ## start the embedded database (SecantusDB), the four services and the gateway; seed; print GraphiQL and tokens
	$(PY) python infra/devstack.py

test: install-test lint typecheck buf ## everything CI checks
	$(PY) pytest

install: ## install whatever is missing (Python deps with SecantusDB, buf, the JS tools in var/js)
	@bash infra/install.sh

install-test: ## install, plus what only the tests need (Debian's chromium)
	@bash infra/install.sh --test

lint:
	$(PY) ruff check .
	$(PY) ruff format --check .

typecheck:
	$(PY) mypy libs/retail-kit/src catalog-svc/src store-svc/src order-svc/src member-svc/src gateway/src

proto: ## regenerate Python and .pyi stubs from proto/
	$(PY) python proto/generate.py

buf: ## lint the contracts and check them for breaking changes against the previous commit
	cd proto && ../$(BUF) lint
	bash infra/buf-breaking.sh

seed: ## load the demo data into a running database (idempotent)
	$(PY) python -m catalog_svc.seed
	$(PY) python -m store_svc.seed
	$(PY) python -m member_svc.seed

schema: ## re-export the gateway's SDL
	$(PY) python -m gateway.export_schema

bench: install ## gateway products query vs the direct-PyMongo floor (wrk from Debian's packages)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) python infra/bench/products.py

bench-discovery: install ## search, nearbyStores and reservations vs their floors, across data sizes
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) python infra/bench/discovery.py

bench-orders: install ## flash sale: 500 concurrent placeOrder for 100 units, and placeOrder next to its gRPC hops
	$(PY) python infra/bench/flash_sale.py

bench-persisted: install ## products and product(id): persisted GET and APQ POST next to plain POST (wrk)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) python infra/bench/persisted.py

grpcurl: ## grpcurl (pinned) into var/bin for docs/PARTNERS.md; needs Go, ~2 min once (else infra/grpc_cli.py)
	@[ -x var/bin/grpcurl ] || GOBIN=$(CURDIR)/var/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
	@echo "var/bin/grpcurl is ready"

clean:
	rm -rf var/db var/bench
