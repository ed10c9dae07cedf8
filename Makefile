# The two commands of the README's quick start.
.PHONY: demo test bootstrap lint bench

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
