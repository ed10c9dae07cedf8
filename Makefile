# The two commands of the README's quick start.
.PHONY: demo test bootstrap lint bench faults

demo:
	@.ci/bootstrap
	@.venv/bin/axis demo

test:
	@.ci/bootstrap --postgres
	@.venv/bin/pytest -q -p no:cacheprovider

lint:
	@.venv/bin/ruff check .
	@.venv/bin/mypy --strict

bench:
	@.ci/bootstrap
	@.venv/bin/python -m bench

# The fault-injection suite (docs/faults.md): private RabbitMQ and PostgreSQL nodes, six
# scenarios, about ten minutes on 2 cores.
faults:
	@.ci/bootstrap --postgres
	@.venv/bin/python -m bench faults
