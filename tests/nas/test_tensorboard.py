"""The search's TensorBoard, read back from its event files: per-trial scalars against the study,
a live hypervolume equal to a recomputation, resume without a repeated step, one writer per run,
HParams sessions with declared domains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from nas import Constraint, pareto
from nas.search import Search
from nas.tensorboard import HParamsLog, SearchBoard, last_steps, write_overlay
from tests.nas.toy import Capacity, ParamCount, ToySpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
REFERENCE = np.array([0.0, 5000.0])  # (capacity: maximised, params: minimised)


def _search(storage: optuna.storages.BaseStorage, constraints: tuple[Constraint, ...] = ()) -> Search:
    return Search(
        space=ToySpace(),
        objectives=[Capacity("capacity"), ParamCount("params")],
        constraints=list(constraints),
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name="toy",
    )


def _board(logdir: Path, search: Search, hparams: HParamsLog | None = None, **kwargs) -> SearchBoard:
    return SearchBoard(
        logdir,
        [o.name for o in search.objectives],
        search.directions,
        constraints=search.constraints,
        reference=REFERENCE,
        figure_every=5,
        hparams=hparams,
        device="toydev",
        run={"device": "toydev", "seed": 0},
        **kwargs,
    )


def _events(path: Path) -> EventAccumulator:
    events = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_every_trial_is_a_step_and_the_live_hypervolume_is_the_studys(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    search = _search(storage, constraints=(Constraint("params", upper=1500.0),))
    board = _board(tmp_path / "toydev", search)
    study = search.run(n_trials=20, show_progress=False, callbacks=[board])
    board.close(study)
    events = _events(tmp_path / "toydev")
    trials = study.get_trials()
    steps = [e.step for e in events.Scalars("search/evaluations")]
    assert steps == [t.number for t in trials]
    evaluated = {
        t.number: t.values for t in trials if t.state == TrialState.COMPLETE and "reused_from_trial" not in t.user_attrs
    }
    logged = {e.step: e.value for e in events.Scalars("objective/capacity")}
    assert logged == {n: pytest.approx(v[0]) for n, v in evaluated.items()}
    # The live hypervolume after each trial equals one computed from scratch on the trials so far.
    hv = events.Scalars("search/hypervolume")
    for event in hv:
        feasible = [
            t.values
            for t in trials
            if t.number <= event.step and t.state == TrialState.COMPLETE and t.constraints["params<=1500"] <= 0
        ]
        expected = pareto.hypervolume(np.array(feasible).reshape(-1, 2), search.directions, REFERENCE)
        assert event.value == pytest.approx(expected, rel=1e-6)
    assert [e.value for e in hv] == sorted(e.value for e in hv) and hv[-1].value > 0
    share = events.Scalars("search/feasible_share")[-1].value
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert share == pytest.approx(sum(t.constraints["params<=1500"] <= 0 for t in complete) / len(complete))
    images = [e.step for e in events.Images("pareto/capacity_vs_params")]
    assert images == sorted(set(images)) and images[-1] == trials[-1].number


def test_a_resumed_search_appends_without_repeating_a_step(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    for budget in (8, 15, 15):  # the third run adds no trial: it must add no step either
        search = _search(storage)
        board = _board(tmp_path / "toydev", search)
        study = search.run(n_trials=budget, show_progress=False, callbacks=[board])
        board.close(study)
    steps = [e.step for e in _events(tmp_path / "toydev").Scalars("search/evaluations")]
    assert steps == sorted(set(steps)) == [t.number for t in study.get_trials()]
    assert last_steps(tmp_path / "toydev")["search/evaluations"] == study.get_trials()[-1].number
    assert len(list((tmp_path / "toydev").glob("events.out.tfevents.*"))) == 3  # one per run
    images = [e.step for e in _events(tmp_path / "toydev").Images("pareto/capacity_vs_params")]
    assert images == sorted(set(images))
    closed = [e.step for e in _events(tmp_path / "toydev").Scalars("search/closed_at_trial")]
    assert closed == sorted(set(closed)) and len(closed) == 2


def test_a_second_writer_of_the_same_run_writes_nothing(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    search = _search(storage)
    first, second = _board(tmp_path / "toydev", search), _board(tmp_path / "toydev", search)
    study = search.run(n_trials=6, show_progress=False, callbacks=[first, second])
    second.close(study)
    first.close(study)
    steps = [e.step for e in _events(tmp_path / "toydev").Scalars("search/evaluations")]
    assert steps == sorted(set(steps)) and len(steps) == len(study.get_trials())


def test_hparams_sessions_declare_domains_and_mark_the_front(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    search = _search(storage)
    metrics = ["objective/capacity", "objective/params", "feasible", "on_front"]
    hparams = HParamsLog(tmp_path / "hparams", {"device": ["toydev"], "seed": [0]}, ToySpace().distributions(), metrics)
    board = _board(tmp_path / "tb" / "toydev", search, hparams=hparams)
    study = search.run(n_trials=10, show_progress=False, callbacks=[board])
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    front = [complete[0].number]
    board.close(study, front_numbers=front)

    experiment = _events(tmp_path / "hparams").PluginTagToContent("hparams")["_hparams_/experiment"]
    declared = plugin_data_pb2.HParamsPluginData.FromString(experiment).experiment
    domains = {
        h.name: [v.number_value or v.string_value for v in h.domain_discrete.values] for h in declared.hparam_infos
    }
    assert domains["gene/width_0"] == [4, 8, 16, 32] and domains["device"] == ["toydev"]
    assert [m.name.tag for m in declared.metric_infos] == metrics
    sessions = sorted((tmp_path / "hparams" / "toydev").iterdir())
    assert [p.name for p in sessions] == [f"trial_{t.number:05d}" for t in complete]
    for trial, session in zip(complete, sessions):
        events = _events(session)
        start = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        info = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info
        assert info.hparams["gene/width_1"].number_value == trial.params["width_1"]
        assert events.Scalars("objective/capacity")[0].value == pytest.approx(trial.values[0])
        assert events.Scalars("on_front")[-1].value == float(trial.number in front)


def test_overlay_writes_one_image_of_every_devices_front(tmp_path: Path) -> None:
    fronts = {"fast": np.array([[1.0, 70.0], [2.0, 80.0]]), "slow": np.array([[100.0, 71.0], [300.0, 85.0]])}
    write_overlay(tmp_path / "overlay", fronts, ("latency_ms", "accuracy"), ("minimize", "maximize"))
    assert _events(tmp_path / "overlay").Tags()["images"] == ["pareto/latency_ms_vs_accuracy"]


def test_pareto_images_thin_out_as_the_study_grows(tmp_path: Path) -> None:
    """Every figure_every trials for the first 20 images, then every 5% of the trials so far: an
    image plots every trial, so a fixed pace would make a long study's trials ever slower."""
    board = SearchBoard(tmp_path, ["a", "b"], ["maximize", "minimize"], figure_every=25)
    drawn = []
    for number in range(100_000):
        if board._figure_due(number):
            drawn.append(number)
            board._figured = number
    assert drawn[:20] == [25 * k - 1 for k in range(1, 21)]
    gaps = [b - a for a, b in zip(drawn, drawn[1:])]
    assert all(gap % 25 == 0 for gap in gaps)
    assert all(gap >= (a + 1) // 20 for gap, a in zip(gaps, drawn))
    assert len(drawn) < 120  # 4,000 at the fixed pace
