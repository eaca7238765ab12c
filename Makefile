.PHONY: serve test bench soak

VENV ?= .venv

$(VENV)/bin/engagehook:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -c requirements.lock -e '.[test]'

serve: $(VENV)/bin/engagehook
	$(VENV)/bin/engagehook serve

test: $(VENV)/bin/engagehook
	$(VENV)/bin/pytest

bench: $(VENV)/bin/engagehook
	$(VENV)/bin/pip install -q -c requirements.lock -e '.[test,bench]' && $(VENV)/bin/python -m bench.run

soak: $(VENV)/bin/engagehook
	ENGAGEHOOK_SOAK=1 $(VENV)/bin/pytest tests/faults -m slow
