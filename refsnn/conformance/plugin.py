"""pytest plugin (entry point ``pytest11``): ``--refsnn-conformance=ADAPTER``.

Installed with refsnn, so it loads in every pytest run of the environment; it only adds two
options and parametrizes the ``golden_case`` fixture of :mod:`refsnn.conformance.suite`, which
is collected only when asked for::

    pytest --pyargs refsnn.conformance.suite --refsnn-conformance=spikingjelly
"""

from __future__ import annotations

from pathlib import Path

import pytest

DEFAULT_GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden"


def pytest_addoption(parser):
    group = parser.getgroup("refsnn-conformance")
    group.addoption("--refsnn-conformance", default=None, metavar="ADAPTER",
                    help="run refsnn's golden cases against ADAPTER (refsnn, spikingjelly or "
                         "module:Class)")
    group.addoption("--refsnn-golden", default=str(DEFAULT_GOLDEN), metavar="DIR",
                    help="folder of golden cases (default: refsnn's data/golden)")
    group.addoption("--refsnn-case", action="append", default=[], metavar="NAME",
                    help="run only golden case NAME (exact name; repeatable)")


def _cases(config) -> tuple[Path, list[str]]:
    folder = Path(config.getoption("--refsnn-golden"))
    return folder, sorted(p.name[:-len(".trace.h5")] for p in folder.glob("*.trace.h5"))


def pytest_configure(config):
    chosen = config.getoption("--refsnn-case", default=None)
    if chosen:
        folder, cases = _cases(config)
        unknown = sorted(set(chosen) - set(cases))
        if unknown:
            raise pytest.UsageError(f"--refsnn-case: no golden case {', '.join(unknown)} in "
                                    f"{folder}; cases: {', '.join(cases)}")


def pytest_generate_tests(metafunc):
    if "golden_case" not in metafunc.fixturenames:
        return  # every other test of the session: the plugin does nothing
    folder, cases = _cases(metafunc.config)
    chosen = metafunc.config.getoption("--refsnn-case")
    if chosen:
        # exact names (checked in pytest_configure), unlike -k, where "mlp_if" also
        # matches "mlp_if_zero_half"
        cases = [c for c in cases if c in chosen]
    metafunc.parametrize("golden_case", [str(folder / c) for c in cases], ids=cases)


@pytest.fixture(scope="session")
def conformance_adapter(request):
    spec = request.config.getoption("--refsnn-conformance")
    if spec is None:
        pytest.skip("no adapter: pass --refsnn-conformance=ADAPTER")
    from refsnn.conformance import load_adapter

    return spec, load_adapter(spec)
