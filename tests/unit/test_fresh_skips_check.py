"""The fresh-clone skip check (.ci/check_fresh_skips.py) on small junit files, and the list it reads."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_fresh_skips", REPO / ".ci" / "check_fresh_skips.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load()


def _junit(path: Path, cases: dict[str, str | None]) -> Path:
    """A pytest-style junit file: key ``classname::name`` -> skip message, or None for a pass."""
    rows = []
    for key, skip in cases.items():
        classname, name = key.split("::")
        body = f'<skipped type="pytest.skip" message="{skip}" />' if skip is not None else ""
        rows.append(f'<testcase classname="{classname}" name="{name}" time="0.1">{body}</testcase>')
    path.write_text(f'<testsuites><testsuite name="pytest">{"".join(rows)}</testsuite></testsuites>')
    return path


@pytest.fixture
def expected(tmp_path: Path) -> Path:
    path = tmp_path / "skips.txt"
    path.write_text("# comment\n\ntests/integration/x/test_a.py::test_lfw[sface] | needs LFW\n")
    return path


def test_node_ids_become_junit_keys() -> None:
    assert check.node_to_key("tests/a/test_b.py::test_c[x]") == "tests.a.test_b::test_c[x]"
    assert check.node_to_key("tests/a/test_b.py::TestK::test_c") == "tests.a.test_b.TestK::test_c"


def test_exactly_the_listed_skips_pass(tmp_path: Path, expected: Path) -> None:
    run = _junit(
        tmp_path / "run.xml",
        {"tests.integration.x.test_a::test_lfw[sface]": "no shared data", "tests.unit.test_b::test_ok": None},
    )
    assert check.main([str(run), "--expected", str(expected)]) == 0


def test_an_undocumented_skip_fails(
    tmp_path: Path, expected: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _junit(
        tmp_path / "run.xml",
        {
            "tests.integration.x.test_a::test_lfw[sface]": "no shared data",
            "tests.integration.y.test_c::test_retro": "no shared data",
        },
    )
    assert check.main([str(run), "--expected", str(expected)]) == 1
    assert "UNDOCUMENTED SKIP tests.integration.y.test_c::test_retro" in capsys.readouterr().out


def test_a_listed_test_that_ran_or_is_gone_fails(tmp_path: Path, expected: Path) -> None:
    ran = _junit(tmp_path / "ran.xml", {"tests.integration.x.test_a::test_lfw[sface]": None})
    assert check.main([str(ran), "--expected", str(expected)]) == 1
    gone = _junit(tmp_path / "gone.xml", {"tests.unit.test_b::test_ok": None})
    assert check.main([str(gone), "--expected", str(expected)]) == 1
    assert check.main([str(gone), "--expected", str(expected), "--partial"]) == 0


def test_skips_the_baseline_shares_are_not_counted(tmp_path: Path, expected: Path) -> None:
    cases = {
        "tests.integration.x.test_a::test_lfw[sface]": "no shared data",
        "tests.browser.test_console::test_page": "chromium is not installed",
    }
    run = _junit(tmp_path / "run.xml", cases)
    base = _junit(
        tmp_path / "base.xml", {"tests.browser.test_console::test_page": "chromium is not installed"}
    )
    assert check.main([str(run), "--expected", str(expected)]) == 1
    assert check.main([str(run), "--expected", str(expected), "--baseline", str(base)]) == 0


def test_a_line_without_a_reason_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "skips.txt"
    bad.write_text("tests/x/test_a.py::test_b\n")
    with pytest.raises(SystemExit, match="reason"):
        check.read_expected(bad)


def test_the_documented_list_names_real_tests_with_reasons() -> None:
    """Every entry of tests/fresh_clone_skips.txt names a test function that exists and takes the shared
    data (so the list cannot silently go stale when a test is renamed)."""
    entries = check.read_expected(REPO / "tests" / "fresh_clone_skips.txt")
    assert entries and all(reason for reason in entries.values())
    for key in entries:
        classname, name = key.split("::")
        path = REPO / (classname.replace(".", "/") + ".py")
        source = path.read_text()
        function = name.split("[")[0]
        assert f"def {function}(" in source, f"{key}: no such test in {path}"
        body = source.split(f"def {function}(", 1)[1].split("\ndef ", 1)[0]
        assert "shared_faces" in body, f"{key} does not take the shared data"
