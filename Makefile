# Convenience targets; the README's two commands work without make.
.PHONY: setup demo test bench-aeb bench-throughput bench-warehouse ui serve

setup:
	python3 -m venv .venv
	.venv/bin/python -m pip install -q --upgrade pip
	.venv/bin/pip install -q -c constraints.txt -e ".[test]"

demo: setup
	.venv/bin/newsmill demo

test:
	.venv/bin/python -m pytest

bench-aeb:
	.venv/bin/python bench/aeb.py

bench-throughput:
	.venv/bin/python bench/throughput.py --n 1000

bench-warehouse:
	.venv/bin/python bench/warehouse.py

ui:
	.venv/bin/newsmill ui

serve:
	.venv/bin/newsmill serve
