"""pytest plugin (entry point ``pytest11``): ``--refsnn-conformance=ADAPTER``.

Installed with refsnn, so it loads in every pytest run of the environment; it only adds
options, parametrizes the ``golden_case`` fixture of :mod:`refsnn.conformance.suite` (collected
only when asked for), and touches nothing outside that module: ``--refsnn-case`` deselects the
suite's other cases and properties, and a failing property gets a ``reproduce`` section::

    pytest --pyargs refsnn.conformance.suite --refsnn-conformance=spikingjelly
    pytest --pyargs refsnn.conformance.suite --refsnn-conformance=refsnn --refsnn-case=mlp_if

It imports neither Hypothesis nor the suite unless ``--refsnn-case`` is given (then it reads
the property names).
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
                    help="run only NAME, a golden case or a theory property of the suite "
                         "(exact name, unlike -k; repeatable)")


SUITE = "refsnn.conformance.suite"


def _cases(config) -> tuple[Path, list[str]]:
    folder = Path(config.getoption("--refsnn-golden"))
    return folder, sorted(p.name[:-len(".trace.h5")] for p in folder.glob("*.trace.h5"))


def property_names() -> list[str]:
    """The theory properties of the suite, by test function name."""
    from refsnn.conformance import properties

    return sorted(k for k in vars(properties) if k.startswith("test_"))


def pytest_configure(config):
    chosen = config.getoption("--refsnn-case", default=None)
    if chosen:
        folder, cases = _cases(config)
        unknown = sorted(set(chosen) - set(cases) - set(property_names()))
        if unknown:
            raise pytest.UsageError(
                f"--refsnn-case: no golden case or property {', '.join(unknown)} (golden "
                f"cases in {folder}: {', '.join(cases)}; properties: "
                f"{', '.join(property_names())})")


def pytest_generate_tests(metafunc):
    if "golden_case" not in metafunc.fixturenames:
        return  # every other test of the session: the plugin does nothing
    folder, cases = _cases(metafunc.config)
    metafunc.parametrize("golden_case", [str(folder / c) for c in cases], ids=cases)


def _in_suite(item) -> bool:
    module = getattr(item, "module", None)
    return module is not None and module.__name__ == SUITE


def case_name(item) -> str:
    """A suite item's case: the golden case's name, or the property's function name."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "golden_case" in callspec.params:
        return Path(callspec.params["golden_case"]).name
    return item.originalname


def pytest_collection_modifyitems(config, items):
    chosen = config.getoption("--refsnn-case")
    if not chosen:
        return
    # exact names (checked in pytest_configure), unlike -k, where "mlp_if" also matches
    # "mlp_if_zero_half"; tests outside the suite are left alone
    drop = [i for i in items if _in_suite(i) and case_name(i) not in chosen]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


def reproduce_command(spec: str, case: str) -> str:
    """The one-line command that runs exactly ``case`` (golden case or property) against
    adapter ``spec``."""
    return (f"python -m pytest --pyargs {SUITE} --refsnn-conformance={spec} "
            f"--refsnn-case={case}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    # a failing property gets its one-line command (a golden case prints its own, after the
    # compare table); the examples are derandomized, so the command replays the same ones
    if report.failed and call.when == "call" and _in_suite(item) \
            and "golden_case" not in item.fixturenames:
        spec = item.config.getoption("--refsnn-conformance")
        report.sections.append(("reproduce", reproduce_command(spec, case_name(item))))


@pytest.fixture(scope="session")
def conformance_adapter(request):
    spec = request.config.getoption("--refsnn-conformance")
    if spec is None:
        pytest.skip("no adapter: pass --refsnn-conformance=ADAPTER")
    from refsnn.conformance import load_adapter

    return spec, load_adapter(spec)
