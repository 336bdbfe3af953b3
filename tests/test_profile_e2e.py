"""Profiling slices end to end: a real short run with --profile on two setups."""

import functools
import xml.etree.ElementTree as ET

import pytest

from asyncbench.analysis.cpu_split import PARTS, splits
from asyncbench.model.profiles import PROFILE_OK
from asyncbench.model.results import load_run
from tests import cli

pytestmark = pytest.mark.servers
run_cli = functools.partial(cli.run_cli, timeout=240)
BLOCKS = 3


def test_profile_writes_a_flame_graph_and_a_split_per_arm_outside_the_measured_slices(tmp_path):
    scenario = tmp_path / "prof.toml"
    scenario.write_text(
        'name = "prof"\n'
        f"[load]\nusers = [2]\nmin_blocks = {BLOCKS}\nmax_blocks = {BLOCKS}\n"
        "settle_s = 0.2\nwindow_s = 0.4\nmax_window_s = 0.4\nmin_requests_per_user = 1\ndrain_timeout_s = 5.0\n"
        '[[setups]]\nname = "gunicorn-gthread"\nworkers = 1\nthreads = 4\n'
        '[[setups]]\nname = "uvicorn"\nworkers = 1\n'
        '[workloads.noio]\nvariants = ["sync", "async"]\n'
        "[profile]\nseconds = 1.0\nrate = 200\n"  # not enabled: --profile turns it on
        f'[database]\nrows = 300\nsqlite_path = "{tmp_path / "db.sqlite3"}"\n'
    )
    reports = tmp_path / "reports"
    done = run_cli("run", str(scenario), "--profile", "--reports-dir", str(reports))
    assert done.returncode == 0, done.stderr[-3000:]
    run = load_run(reports / "latest")
    assert len(run.cells) == 4 and len(run.profiles) == 4
    skipped = [p.reason for p in run.profiles if p.status != PROFILE_OK]
    if skipped and all("ptrace" in r for r in skipped):
        pytest.skip(f"py-spy may not attach here: {skipped[0]}")
    assert not skipped, skipped
    run_dir = reports / "latest"
    for cell in run.cells:
        # the measured slices are one per block (the pilot may drop an arm after two), none of them the
        # profiling slice: that one's window is 1 s, a measured one's 0.4 s
        blocks = [r.block for r in cell.repeats]
        assert cell.status == "ok" and len(blocks) >= 2 and blocks == list(range(len(blocks)))
        assert all(r.duration_s < 0.7 for r in cell.repeats)
        (p,) = [p for p in run.profiles if p.key == cell.key]
        assert p.label == "profiling slice" and p.samples > 0 and p.requests > 0
        # it ran after every measured slice of its group
        assert p.started_at >= max(r.started_at + r.duration_s for c in run.cells for r in c.repeats)
        svg = run_dir / p.flamegraph
        assert svg.name == f"noio-u2-{cell.setup}-{cell.variant}.svg"
        assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
        assert (run_dir / p.collapsed).read_text().strip()
    split = {s.cell.key: s for s in splits(run)}
    assert len(split) == 4
    for s in split.values():
        # the parts sum to the arm's CPU per request from its measured slices
        assert s.cpu_ms == s.cell.summary.cpu_ms_per_request
        assert sum(s.ms[p] for p in PARTS) == pytest.approx(s.cpu_ms)
        assert sum(s.shares.values()) == pytest.approx(1.0)
    # Django's handler runs in every arm; under uvicorn it runs on the event loop's thread, which
    # py-spy samples well (pool threads it under-samples: a gthread arm's 1-s profile may miss it)
    assert all(s.ms["django"] + s.ms["view"] > 0 for s in split.values() if s.cell.setup == "uvicorn")
    page = (run_dir / "index.html").read_text()
    assert "Where the time goes" in page and 'href="profiles/noio-u2-uvicorn-async.svg"' in page
    assert "costs" in page and "CPU per request than sync under" in page
