from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from nas import Constraint
from nas.objectives import TableMetric
from nas.pareto import non_dominated_mask
from nas.results import pareto_rows, trials_table
from nas.search import (
    FAIL_KEY,
    RECOVERED_KEY,
    UNAVAILABLE_KEY,
    WORKER_KEY,
    Search,
    SearchAbortedError,
    SearchSetupError,
    evaluations,
)
from tests.nas.toy import Capacity, NanFor, ParamCount, ToySpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_search(storage=None, **kwargs) -> Search:
    options = dict(
        space=ToySpace(),
        objectives=[Capacity("capacity"), ParamCount("params")],
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name="toy",
    )
    options.update(kwargs)
    return Search(**options)


def test_runs_budget_and_records_architectures() -> None:
    search = make_search()
    study = search.run(n_trials=12, show_progress=False)
    trials = study.get_trials()
    assert len(trials) == 12
    assert all(t.state == TrialState.COMPLETE for t in trials)
    space = ToySpace()
    for t in trials:
        arch = space.parse(t.user_attrs["arch"])
        assert arch.params == t.params
        assert t.values[0] == Capacity("c").evaluate(_candidate(space, arch))


def _candidate(space, arch):
    from nas import Candidate

    return Candidate(arch, space)


def test_resume_continues_without_losing_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = make_search(storage=url).run(n_trials=5, show_progress=False)
    before = [(t.number, t.params, t.values) for t in first.get_trials()]
    resumed = make_search(storage=url, sampler=optuna.samplers.RandomSampler(seed=1)).run(
        n_trials=9, show_progress=False
    )
    after = resumed.get_trials()
    assert len(after) == 9
    assert [(t.number, t.params, t.values) for t in after[:5]] == before


def test_nan_objective_fails_only_its_trial() -> None:
    search = make_search(objectives=[Capacity("capacity"), NanFor("broken", width=8)])
    study = search.run(n_trials=30, show_progress=False)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert failed and complete
    for t in failed:
        assert t.params["width_0"] == 8
        assert "broken" in t.user_attrs[FAIL_KEY] and "nan" in t.user_attrs[FAIL_KEY]


def test_constraints_mark_feasibility_and_reach_optuna() -> None:
    bound = Constraint("params", upper=1000.0)
    search = make_search(constraints=[bound])
    study = search.run(n_trials=20, show_progress=False)
    table = trials_table(search, study)
    assert any(r["feasible"] for r in table.rows) and not all(r["feasible"] for r in table.rows)
    for trial, row in zip(study.get_trials(), table.rows):
        assert trial.constraints == {bound.name: trial.values[1] - 1000.0}
        assert row["feasible"] == (trial.values[1] <= 1000.0)
    for row in pareto_rows(table):
        assert row["params"] <= 1000.0


def test_constraint_on_unknown_metric_is_refused_before_running() -> None:
    with pytest.raises(SearchSetupError, match="latency_ms.*available"):
        make_search(constraints=[Constraint("latency_ms", upper=1.0)])


def test_resuming_a_study_with_other_objectives_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_search(storage=url).run(n_trials=2, show_progress=False)
    other = make_search(storage=url, objectives=[Capacity("capacity"), ParamCount("size")])
    with pytest.raises(SearchSetupError, match="created for"):
        other.run(n_trials=4, show_progress=False)


def test_resuming_a_study_with_values_from_elsewhere_is_refused(tmp_path: Path) -> None:
    """Same names, same space: only the objective's source differs (another device's latency
    column, in the CLI), and the resume is refused naming both sources."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_search(storage=url).run(n_trials=2, show_progress=False)
    other = make_search(storage=url, objectives=[Capacity("capacity"), _Fast("params")])
    with pytest.raises(SearchSetupError, match=r"sources: stored .*tests\.nas\.toy\.ParamCount.*toy constant"):
        other.run(n_trials=4, show_progress=False)


def test_pareto_rows_are_the_brute_force_front_of_the_trials() -> None:
    search = make_search()
    table = trials_table(search, search.run(n_trials=40, show_progress=False))
    unique = {r["arch"]: r for r in reversed(table.feasible_complete())}
    values = np.array([[r["capacity"], r["params"]] for r in unique.values()])
    expected = set()
    for i, (cap, par) in enumerate(values):
        dominated = any((c >= cap and p <= par) and (c > cap or p < par) for c, p in values)
        if not dominated:
            expected.add(list(unique)[i])
    front = pareto_rows(table)
    assert {r["arch"] for r in front} == expected
    assert [r["params"] for r in front] == sorted(r["params"] for r in front)
    assert non_dominated_mask(np.array([[r["capacity"], r["params"]] for r in front]), ["maximize", "minimize"]).all()


def test_revisited_architectures_reuse_their_values() -> None:
    space = ToySpace()
    search = make_search()
    study = search.study()
    arch = space.sample(np.random.default_rng(0))
    study.enqueue_trial(arch.params)
    study.enqueue_trial(arch.params)
    search.run(n_trials=2, show_progress=False)
    first, second, third = study.get_trials()
    assert second.user_attrs["reused_from_trial"] == first.number
    assert second.values == first.values
    # The repeat was answered from the storage and spent no budget: a third trial evaluated.
    assert "reused_from_trial" not in third.user_attrs and evaluations(study) == 2


WORKER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import optuna
    from nas import Candidate, Cost, Objective
    from nas.search import Search
    from tests.nas.toy import Capacity, ToySpace

    class Slow(Objective):  # three quick trials, then one that hangs until the test kills it
        cost = Cost.MEASUREMENT
        calls = 0
        def source(self):  # the resuming run measures the same thing, only faster
            return "toy constant"
        def __call__(self, candidate):
            Slow.calls += 1
            time.sleep(0.05 if Slow.calls <= 3 else 600)
            return 1.0

    Search(space=ToySpace(), objectives=[Capacity("capacity"), Slow("slow")],
           sampler=optuna.samplers.RandomSampler(seed=0), storage={url!r},
           study_name="toy").run(n_trials=100, show_progress=False)
    """
)


@pytest.mark.slow
def test_killed_worker_loses_no_finished_trial_and_its_trial_is_asked_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(Path(__file__).parents[2]), url=url))
    proc = subprocess.Popen([sys.executable, str(script)])
    storage = optuna.storages.RDBStorage(url)
    deadline = 60.0
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name="toy", storage=storage)
        except KeyError:
            continue
        trials = study.get_trials()
        states = [t.state for t in trials]
        # Tagged: the untagged case (killed between ask and tag) has its own test below.
        last = trials[-1] if trials else None
        if (
            states.count(TrialState.COMPLETE) >= 3
            and last.state == TrialState.RUNNING
            and WORKER_KEY in last.user_attrs
        ):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    study = optuna.load_study(study_name="toy", storage=storage)
    finished = {t.number: t.values for t in study.get_trials() if t.state == TrialState.COMPLETE}
    running = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert len(finished) >= 3 and len(running) == 1

    ok = make_search(storage=url, objectives=[Capacity("capacity"), _Fast("slow")])
    study = ok.run(n_trials=len(study.get_trials()) + 2, show_progress=False)
    trials = study.get_trials()
    dead = trials[running[0].number]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs[RECOVERED_KEY]
    assert {n: v for n, v in ((t.number, t.values) for t in trials) if n in finished} == finished
    retried = [t for t in trials[dead.number + 1 :] if t.params == running[0].params]
    assert retried and retried[0].state == TrialState.COMPLETE  # the lost trial's genes were asked again
    assert evaluations(study) == len(finished) + 3  # the dead trial is not one: its retry is


PROPOSING_WORKER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import optuna
    from nas.search import Search
    from tests.nas.toy import Capacity, ToySpace

    class Stuck(optuna.samplers.RandomSampler):  # three trials, then a proposal that never ends
        def sample_independent(self, study, trial, name, distribution):
            if trial.number >= 3:
                time.sleep(600)
            return super().sample_independent(study, trial, name, distribution)

    Search(space=ToySpace(), objectives=[Capacity("capacity")], sampler=Stuck(seed=0),
           storage={url!r}, study_name="toy").run(n_trials=100, show_progress=False)
    """
)


@pytest.mark.slow
def test_a_worker_killed_while_its_sampler_proposes_leaves_a_trial_recovered_at_once(tmp_path: Path) -> None:
    """The trial is tagged with its worker before its genes are drawn, so a rerun finds the worker
    dead and retries the trial at once instead of waiting untagged_grace_s for an untagged one."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    script = tmp_path / "worker.py"
    script.write_text(PROPOSING_WORKER.format(root=str(Path(__file__).parents[2]), url=url))
    proc = subprocess.Popen([sys.executable, str(script)])
    storage = optuna.storages.RDBStorage(url)
    start = time.monotonic()
    stuck = None
    while stuck is None and time.monotonic() - start < 60:
        time.sleep(0.3)
        try:
            trials = optuna.load_study(study_name="toy", storage=storage).get_trials()
        except KeyError:
            continue
        stuck = next((t for t in trials if t.number == 3 and t.state == TrialState.RUNNING), None)
    time.sleep(1.0)  # past the instant between creating the trial and tagging it: inside the sampler
    stuck = optuna.load_study(study_name="toy", storage=storage).get_trials()[3] if stuck else None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert stuck is not None and stuck.params == {} and WORKER_KEY in stuck.user_attrs  # killed while proposing
    search = make_search(storage=url, objectives=[Capacity("capacity")])
    search.untagged_grace_s = search.settle_s = 3600.0  # an untagged trial would hold the run an hour
    started = time.monotonic()
    study = search.run(n_trials=5, show_progress=False)
    assert time.monotonic() - started < 60
    dead = study.get_trials()[3]
    assert (
        dead.state == TrialState.FAIL
        and f"worker {stuck.user_attrs[WORKER_KEY]} died" in dead.user_attrs[RECOVERED_KEY]
    )
    assert evaluations(study) == 5 and _unfinished(study) == []


@pytest.mark.parametrize("grace_s, recovered", [(0.0, True), (3600.0, False)])
@pytest.mark.parametrize("kind", ["sqlite", "journal"])  # naive local vs aware UTC start times
def test_trial_of_worker_killed_before_tagging_is_recovered_after_the_grace(
    tmp_path: Path, grace_s: float, recovered: bool, kind: str
) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if kind == "sqlite":
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    else:
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    search = make_search(storage=storage, objectives=[Capacity("capacity"), _Fast("slow")])
    search.untagged_grace_s = grace_s
    search.settle_s = 2.0
    orphan = search.study().ask(search.space.distributions())  # asked, never tagged nor told
    study = search.run(n_trials=4, show_progress=False)
    left = study.get_trials()[orphan.number]
    if recovered:  # not an evaluation: its retry is, and the budget counts exactly four
        assert left.state == TrialState.FAIL and "(untagged) died" in left.user_attrs[RECOVERED_KEY]
        assert any(t.params == left.params for t in study.get_trials()[orphan.number + 1 :])
        assert evaluations(study) == 4 and _unfinished(study) == []
    else:  # young enough to be a live worker elsewhere, busy between ask and tag: waited for
        assert left.state == TrialState.RUNNING


def _unfinished(study: optuna.Study) -> list[int]:
    return [t.number for t in study.get_trials() if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_resume_right_after_a_kill_inside_ask_runs_the_budget_exactly(tmp_path: Path) -> None:
    """A worker killed inside ``study.ask`` leaves an untagged RUNNING trial; resuming at once
    waits out the grace, recovers it and still runs exactly the budget, nothing left running."""
    search = make_search(storage=f"sqlite:///{tmp_path / 'study.db'}", objectives=[Capacity("capacity"), _Fast("slow")])
    search.run(n_trials=3, show_progress=False)
    search.untagged_grace_s = 2.0
    search.study().ask(search.space.distributions())
    started = time.monotonic()
    study = search.run(n_trials=5, show_progress=False)
    assert evaluations(study) == 5 and _unfinished(study) == []
    assert time.monotonic() - started < 30


def test_a_trial_whose_heartbeat_stopped_is_failed_retried_and_not_counted(tmp_path: Path) -> None:
    """A worker on another host (no pid to look at) stops beating: Optuna's heartbeat check
    fails its trial, the storage's RetryHeartbeatStaleTrialCallback asks it again, and the budget counts
    the retry, not the dead trial."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    storage = RDBStorage(
        f"sqlite:///{tmp_path / 'study.db'}",
        heartbeat_interval=1,
        grace_period=1,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
    )
    search = make_search(storage=storage, objectives=[Capacity("capacity"), _Fast("slow")])
    search.run(n_trials=2, show_progress=False)
    orphan = search.study().ask(search.space.distributions())
    orphan.set_user_attr(WORKER_KEY, "another-host:4242:deadbeef")
    storage.record_heartbeat(orphan._trial_id)
    time.sleep(2.5)
    study = search.run(n_trials=4, show_progress=False)
    trials = study.get_trials()
    assert trials[orphan.number].state == TrialState.FAIL and FAIL_KEY not in trials[orphan.number].user_attrs
    (retry,) = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == orphan.number]
    assert retry.state == TrialState.COMPLETE and retry.params == orphan.params
    assert evaluations(study) == 4 and _unfinished(study) == []


class _Fast(ParamCount):
    def __call__(self, candidate) -> float:
        return 1.0

    def source(self) -> str:
        return "toy constant"


SHARED_WORKER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from nas import Cost, Objective
    from nas.search import Search
    from tests.nas.toy import Capacity, ToySpace

    class Slow(Objective):  # long enough that both workers are running at once
        cost = Cost.MEASUREMENT
        def __call__(self, candidate):
            time.sleep(0.1)
            return 1.0

    storage = JournalStorage(JournalFileBackend({journal!r}))
    Search(space=ToySpace(), objectives=[Capacity("capacity"), Slow("slow")],
           sampler=optuna.samplers.RandomSampler(seed={seed}), storage=storage,
           study_name="shared").run(n_trials=60, show_progress=False)
    """
)


@pytest.mark.slow
def test_workers_sharing_a_journal_split_one_budget(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.log")
    workers = []
    for seed in (0, 1):
        script = tmp_path / f"worker{seed}.py"
        script.write_text(SHARED_WORKER.format(root=str(Path(__file__).parents[2]), journal=journal, seed=seed))
        workers.append(subprocess.Popen([sys.executable, str(script)]))
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="shared", storage=JournalStorage(JournalFileBackend(journal)))
    assert_one_budget_split_without_repeats(study, 60)


def assert_one_budget_split_without_repeats(study: optuna.Study, budget: int) -> None:
    """Workers of one study: no trial lost (each complete, or pruned saying why), exactly
    ``budget`` evaluations, no architecture evaluated twice, and both workers evaluated."""
    trials = study.get_trials()
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert all(t.user_attrs[FAIL_KEY] for t in trials if t.state == TrialState.PRUNED)
    evaluated = [t for t in trials if t.state == TrialState.COMPLETE and "reused_from_trial" not in t.user_attrs]
    assert len(evaluated) == evaluations(study) == budget
    assert len({t.user_attrs["arch"] for t in evaluated}) == budget
    assert len({t.user_attrs["worker"] for t in evaluated}) == 2


def test_a_metric_added_on_resume_is_measured_for_revisited_architectures(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    arch = ToySpace().sample(np.random.default_rng(3))
    first = make_search(storage=url)
    first.study().enqueue_trial(arch.params)
    first.run(n_trials=1, show_progress=False)
    second = make_search(storage=url, metrics=[ParamCount("size")])
    second.study().enqueue_trial(arch.params)
    study = second.run(n_trials=2, show_progress=False)
    revisit = study.get_trials()[1]
    assert revisit.state == TrialState.COMPLETE and revisit.user_attrs["reused_from_trial"] == 0
    assert revisit.user_attrs["metric:size"] == revisit.values[1]  # same count, measured anew


def test_an_isomorph_of_an_evaluated_cell_is_answered_from_the_storage() -> None:
    from nas.objectives import Flops, Params
    from search_spaces import NB201Space

    space = NB201Space()
    # Both cells output their input (node 3 sums a skip from node 0 and two none edges).
    first = space.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|")
    isomorph = space.parse("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    other = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    search = make_search(space=space, objectives=[Params("params"), Flops("flops")])
    study = search.study()
    for arch in (first, isomorph, other):
        study.enqueue_trial(arch.params)
    search.run(n_trials=2, show_progress=False)
    trials = study.get_trials()
    assert [t.user_attrs["arch"] for t in trials] == [first.string, isomorph.string, other.string]
    assert trials[1].user_attrs["reused_from_trial"] == 0 and trials[1].values == trials[0].values
    assert evaluations(study) == 2 and "reused_from_trial" not in trials[2].user_attrs


def test_the_incremental_ledger_counts_what_a_full_scan_counts() -> None:
    """Search's ledger folds the finished prefix once; at every step, whatever the states in the
    tail (running, waiting, pruned, reused), it counts what :func:`evaluations` counts over all
    trials and knows every evaluated complete architecture for reuse."""
    from nas.search import ARCH_KEY, DEDUP_KEY, REUSED_KEY, _Ledger

    study = optuna.create_study(directions=["minimize"])
    ledger = _Ledger()
    rng = np.random.default_rng(0)
    running: list[optuna.Trial] = []
    for step in range(200):
        if running and rng.random() < 0.4:  # finish one of the running trials, in any order
            trial = running.pop(int(rng.integers(len(running))))
            kind = rng.integers(4)
            if kind == 0:
                trial.set_user_attr(REUSED_KEY, 0)
            state = (TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)[kind]
            study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
        else:
            trial = study.ask()
            trial.set_user_attr(ARCH_KEY, f"a{step % 50}")
            trial.set_user_attr(DEDUP_KEY, f"a{step % 50}")
            running.append(trial)
        for with_running in (False, True):
            assert ledger.evaluations(study, running=with_running) == evaluations(study, running=with_running)
    for trial in running:
        study.tell(trial, 1.0)
    assert ledger.evaluations(study) == evaluations(study)
    assert ledger._prefix == len(study.trials)  # everything finished is folded in: reads see no tail
    evaluated_complete = {
        t.user_attrs[DEDUP_KEY]
        for t in study.get_trials(states=(TrialState.COMPLETE,))
        if REUSED_KEY not in t.user_attrs
    }
    assert evaluated_complete == set(ledger.reuse)


def _toy_table(folder: Path, rows: int, empty: set[int] = frozenset()) -> Path:
    """A table in the shared format over the first ``rows`` toy architectures; the latency cells
    of ``empty`` rows are left empty (a missing measurement)."""
    folder.mkdir()
    archs = list(ToySpace().enumerate())[:rows]
    (folder / "archs.csv").write_text("index,arch\n" + "".join(f"{i},{a.string}\n" for i, a in enumerate(archs)))
    cells = ["" if i in empty else f"{1.0 + i}" for i in range(len(archs))]
    (folder / "latency_ms.csv").write_text("index,npu\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells)))
    return folder


def test_an_architecture_without_a_table_value_is_skipped_not_evaluated(tmp_path: Path) -> None:
    """A missing cell prunes its trial, spending nothing: 20 trials on a bad row used to fail and
    count against the budget (and 20 in a row stopped the search)."""
    space = ToySpace()
    empty = set(range(0, 64, 3))  # a third of the space has no value
    latency = TableMetric("latency", _toy_table(tmp_path / "t", 64, empty), "latency_ms", "npu", space=space)
    search = make_search(objectives=[Capacity("capacity"), latency], max_consecutive_failures=2)
    study = search.run(n_trials=30, show_progress=False)
    trials = study.get_trials()
    skipped = [t for t in trials if UNAVAILABLE_KEY in t.user_attrs]
    assert skipped and all(t.state == TrialState.PRUNED and "no usable" in t.user_attrs[FAIL_KEY] for t in skipped)
    missing = {a.string for i, a in enumerate(space.enumerate()) if i in empty}
    assert {t.user_attrs["arch"] for t in skipped} <= missing
    assert evaluations(study) == 30
    assert all(t.state == TrialState.COMPLETE for t in trials if UNAVAILABLE_KEY not in t.user_attrs)


def test_a_sampler_stuck_outside_the_table_stops_with_a_message(tmp_path: Path) -> None:
    latency = TableMetric("latency", _toy_table(tmp_path / "t", 64, set(range(1, 64))), "latency_ms", "npu")
    search = make_search(
        objectives=[Capacity("capacity"), latency], max_consecutive_unavailable=15, min_table_coverage=0.0
    )
    with pytest.raises(SearchAbortedError, match="15 architectures in a row had no value"):
        search.run(n_trials=20, show_progress=False)


def test_a_table_holding_a_small_share_of_the_space_is_refused_before_searching(tmp_path: Path) -> None:
    latency = TableMetric("latency", _toy_table(tmp_path / "t", 20), "latency_ms", "npu", space=ToySpace())
    with pytest.raises(SearchSetupError, match=r"values for 20 of the 64 architectures of toy.*device=fitted"):
        make_search(objectives=[Capacity("capacity"), latency])
    assert make_search(objectives=[Capacity("capacity"), latency], min_table_coverage=0.25)


def test_trials_failing_in_a_row_stop_the_search_with_a_message() -> None:
    search = make_search(objectives=[Capacity("capacity"), NanFor("broken", width=8)], max_consecutive_failures=1)
    with pytest.raises(SearchAbortedError, match="1 trials failed in a row.*finished trials are kept"):
        search.run(n_trials=64, show_progress=False)
