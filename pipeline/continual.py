"""One ``pipeline continual`` run: ingest a dataset → per method a child run → train in one pass
(each minibatch a task) → evaluate on the test prefix every ``eval_every`` examples → log.

Methods: ``gbp`` (GBP learning, configs/continual/<dataset>_gbp.yaml or mnist_gbp.yaml),
``linear`` and ``cnn`` (Keras/Adam baselines, configs/continual/{linear,cnn}.yaml) and ``bp``,
``amp``, ``mf`` (binary-weight message-passing MLPs, configs/baselines/binary_mp.yaml).  Every
method sees the same training examples in the same order and the same test images.  The run that
holds a method's metrics is tagged ``method=<name>``; with several methods a parent run carries
the comma list.

Metrics (accuracies are fractions in [0, 1], step = training examples seen):
``test_accuracy``, ``test_nll`` (nats, mean over test images), ``train_batch_accuracy`` (the
batch's accuracy before its update), ``seconds_per_batch``, and at the end
``seconds_per_iteration`` / ``seconds_per_test_iteration`` (GBP, steady state: the first
compiled call of each loop is excluded).  GBP's parameter posterior is logged as
``posterior/posterior.npz`` (arrays ``<name>.eta``, ``<name>.lam``) and can seed a later run with
``--prior-from`` (a path or a run id).
"""
from __future__ import annotations

import dataclasses
import functools
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from pipeline.config import flatten, from_dict, read_yaml, require, to_yaml, with_overrides
from pipeline.errors import PipelineError
from pipeline.gbp.models.classifier import ClassifierConfig
from pipeline.interrupt import raise_if_interrupted
from pipeline.tracking import Tracker

METHODS = ("gbp", "linear", "cnn", "bp", "amp", "mf")
DEFAULT_METHODS = "gbp,linear,cnn"
DEFAULT_EVAL_EVERY = None  # None: evaluate once, after the last batch
NLL_SAMPLES = 100  # logit samples for the GBP predictive distribution
POSTERIOR_FILE = "posterior.npz"  # logged under posterior/

# metric names (the one place they are spelled)
TEST_ACCURACY, TEST_NLL = "test_accuracy", "test_nll"
TRAIN_BATCH_ACCURACY, SECONDS_PER_BATCH = "train_batch_accuracy", "seconds_per_batch"
SECONDS_PER_ITERATION, SECONDS_PER_TEST_ITERATION = "seconds_per_iteration", "seconds_per_test_iteration"


@dataclass(frozen=True)
class GBPContinualConfig:
    method: Literal["gbp"] = "gbp"
    batch_size: int = 50
    test_batch_size: int = 200
    train_iterations: int = 100
    test_iterations: int = 10
    filtering_alpha: float | None = None
    graph: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self):
        require(self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}")
        require(self.test_batch_size >= 1, f"test_batch_size must be ≥ 1, got {self.test_batch_size}")
        require(self.train_iterations >= 1, f"iterations must be ≥ 1, got {self.train_iterations}")
        require(self.test_iterations >= 1, f"test iterations must be ≥ 1, got {self.test_iterations}")
        require(self.filtering_alpha is None or 0 < self.filtering_alpha <= 1,
                f"filtering_alpha must be in (0, 1] or null, got {self.filtering_alpha}")


@dataclass
class ContinualRequest:
    dataset: str
    methods: str = DEFAULT_METHODS
    train_size: int | None = None
    test_size: int | None = None
    eval_every: int | None = DEFAULT_EVAL_EVERY
    seed: int = 0
    data_dir: Path | None = None
    tracking_uri: str | None = None
    experiment: str = "continual"
    iterations: int | None = None
    test_iterations: int | None = None
    gbp_config: str | None = None  # name under configs/continual/ or a YAML path
    prior_from: str | None = None  # posterior.npz path or MLflow run id
    hidden: str | None = None  # bp/amp/mf hidden widths "501,501"
    task: str | None = None  # bp/amp/mf 10class | 2class
    epochs: int | None = None  # bp/amp/mf passes over the training set (gbp/cnn: one pass; linear: its config)


@dataclass
class MethodOutcome:
    method: str
    run_id: str
    examples: int = 0
    test_accuracy: float | None = None
    test_nll: float | None = None
    seconds_per_iteration: float | None = None
    seconds_per_test_iteration: float | None = None
    seconds_total: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)


Progress = Callable[[str, int, "int | None"], None]  # (method, done, total: None until known)


# ------------------------------------------------------------------------------------ configs
def parse_methods(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PipelineError(f"--method needs at least one of: {', '.join(METHODS)}")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise PipelineError(f"unknown method {unknown[0]!r}; use a comma list of {', '.join(METHODS)}")
    if len(set(names)) != len(names):
        raise PipelineError(f"--method lists a method twice: {text}")
    return names


def load_gbp_config(dataset: str, name: str | None = None) -> GBPContinualConfig:
    from pipeline.config import config_root

    if name is None:
        name = f"{dataset}_gbp" if (config_root() / "continual" / f"{dataset}_gbp.yaml").is_file() else "mnist_gbp"
    data, origin = read_yaml("continual", name)
    if data.get("method", "gbp") != "gbp":
        raise PipelineError(f"{origin}: 'method' must be gbp, got {data.get('method')!r}")
    return from_dict(GBPContinualConfig, data, origin)


def load_baseline_config(name: str):
    from pipeline.baselines.keras_classifiers import CNNConfig, LinearConfig

    data, origin = read_yaml("continual", name)
    data = dict(data)
    data.pop("method", None)
    return from_dict({"linear": LinearConfig, "cnn": CNNConfig}[name], data, origin)


MP_METHODS = ("bp", "amp", "mf")


def _check_method_options(req: ContinualRequest, names: list[str]) -> None:
    """Options that configure one family of methods are refused when none of it runs, rather
    than silently ignored: --config, --iterations, --test-iterations and --prior-from configure
    gbp; --epochs, --hidden and --task configure bp/amp/mf (gbp and cnn are continual learners
    that see every example once; linear's epochs live in configs/continual/linear.yaml)."""
    owners = {"gbp": ("gbp",), "bp, amp and mf": MP_METHODS}
    options = {"gbp": (("--config", req.gbp_config), ("--iterations", req.iterations),
                       ("--test-iterations", req.test_iterations), ("--prior-from", req.prior_from)),
               "bp, amp and mf": (("--epochs", req.epochs), ("--hidden", req.hidden), ("--task", req.task))}
    for family, methods in owners.items():
        given = [flag for flag, value in options[family] if value is not None]
        if given and not set(methods) & set(names):
            raise PipelineError(f"{given[0]} applies only to {family}; add {'it' if len(methods) == 1 else 'one of them'}"
                                f" to --method (running {','.join(names)})")
    if req.epochs is not None:
        require(req.epochs >= 1, f"--epochs must be ≥ 1, got {req.epochs}")


def _resolve_configs(req: ContinualRequest, names: list[str]) -> dict:
    _check_method_options(req, names)
    configs = {}
    for name in names:
        if name == "gbp":
            config = load_gbp_config(req.dataset, req.gbp_config)
            if req.iterations is not None:
                require(req.iterations >= 1, f"--iterations must be ≥ 1, got {req.iterations}")
            if req.test_iterations is not None:
                require(req.test_iterations >= 1, f"--test-iterations must be ≥ 1, got {req.test_iterations}")
            config = with_overrides(config, train_iterations=req.iterations, test_iterations=req.test_iterations)
            config = dataclasses.replace(config, graph=dataclasses.replace(config.graph, seed=req.seed))
            configs[name] = config
        elif name in ("linear", "cnn"):
            configs[name] = load_baseline_config(name)
        else:
            from pipeline.baselines.binary_mp import load_config

            hidden = None
            if req.hidden is not None:
                try:
                    hidden = [int(h) for h in req.hidden.split(",") if h.strip()]
                except ValueError:
                    raise PipelineError(f"--hidden takes a comma list of widths, got {req.hidden!r}") from None
            configs[name] = load_config(name, hidden=hidden, task=req.task, epochs=req.epochs, seed=req.seed)
    return configs


# ------------------------------------------------------------------------------------ evaluation
def predictive_metrics(mean: np.ndarray, std: np.ndarray, labels: np.ndarray, seed: int) -> dict[str, float]:
    """Accuracy of argmax of the logit means, and the NLL of the predictive distribution
    p(c) ≈ (1/S) Σ_s softmax(μ + σ ε_s)_c, ε_s ~ N(0, I), S = NLL_SAMPLES (seeded)."""
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((NLL_SAMPLES,) + mean.shape)
    logits = mean[None].astype(np.float64) + std[None].astype(np.float64) * eps
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    p = probs.mean(axis=0)[np.arange(len(labels)), labels]
    return {TEST_ACCURACY: float((mean.argmax(1) == labels).mean()),
            TEST_NLL: float(-np.log(np.maximum(p, 1e-300)).mean())}


# ------------------------------------------------------------------------------------ runs
def run_continual(req: ContinualRequest, device_name: str,
                  on_progress: Progress = lambda method, done, total: None) -> list[MethodOutcome]:
    from stages.ingest_dataset import ingest_dataset

    names = parse_methods(req.methods)
    if req.train_size is not None and req.train_size < 1:
        raise PipelineError(f"--train-size must be ≥ 1, got {req.train_size}")
    if req.eval_every is not None and req.eval_every < 1:
        raise PipelineError(f"--eval-every must be ≥ 1, got {req.eval_every}")
    configs = _resolve_configs(req, names)  # validate before touching data or the store
    data = ingest_dataset(req.dataset, req.data_dir, req.train_size, req.test_size, req.seed)
    _check_enough_examples(configs, len(data.x_train))
    tracker = Tracker(req.tracking_uri, req.experiment)
    starting_prior = None
    if req.prior_from is not None:  # read and checked before any run starts (only given with gbp)
        from stages.carry_posterior import check_posterior_fits, load_posterior

        starting_prior = load_posterior(req.prior_from, tracker, configs["gbp"].graph.dtype)
        check_posterior_fits(starting_prior, _gbp_classifier(configs["gbp"], data).initial_prior(), req.prior_from)
    runners = {"gbp": functools.partial(_run_gbp, starting_prior=starting_prior), "linear": _run_linear,
               "cnn": _run_cnn}
    settings = {"dataset": req.dataset, "data_source": data.source, "train_size": len(data.x_train),
                "test_size": len(data.x_test), "eval_every": req.eval_every or len(data.x_train),
                "seed": req.seed, "device": device_name, "prior_from": req.prior_from or ""}
    outcomes = []
    if len(names) > 1:
        with tracker.run(f"continual {req.dataset} {','.join(names)}", {"method": ",".join(names)}) as parent:
            tracker.log_params(parent, settings)
            for name in names:
                outcomes.append(_run_method(tracker, name, configs[name], runners.get(name, _run_message_passing),
                                            data, req, settings, parent, on_progress))
    else:
        name = names[0]
        outcomes.append(_run_method(tracker, name, configs[name], runners.get(name, _run_message_passing),
                                    data, req, settings, None, on_progress))
    return outcomes


def _check_enough_examples(configs: dict, n_train: int) -> None:
    """bp/amp/mf train on whole minibatches only: refuse a training set smaller than one."""
    for name, config in configs.items():
        if name in MP_METHODS and n_train < config.batch_size:
            raise PipelineError(f"{name} trains on minibatches of {config.batch_size} examples and "
                                f"{n_train} training examples make none; use --train-size ≥ {config.batch_size}")


def _gbp_classifier(config: GBPContinualConfig, data):
    from pipeline.gbp.models.classifier import GBPClassifier
    from stages.ingest_dataset import as_images

    return GBPClassifier(config.graph, as_images(data.x_train[:1]).shape[1:])


def _run_method(tracker, name, config, runner, data, req, settings, parent_id, on_progress) -> MethodOutcome:
    """One method's child run: ``runner(tracker, outcome, config, data, req, on_progress)`` trains
    and evaluates, logging as it goes; timings and examples seen are logged even if it fails."""
    with tracker.run(name, {"method": name, "dataset": req.dataset}, parent_id) as run_id:
        tracker.log_params(run_id, {**settings, **flatten(config)})
        tracker.log_text(run_id, to_yaml(config), "config/resolved.yaml")
        outcome = MethodOutcome(name, run_id)
        started = time.perf_counter()
        on_progress(name, 0, None)  # shown, without a total yet, while the first batch or epoch runs
        try:
            runner(tracker, outcome, config, data, req, on_progress)
        finally:
            outcome.seconds_total = time.perf_counter() - started
            final = {"seconds_total": outcome.seconds_total, "examples_seen": outcome.examples}
            if outcome.seconds_per_iteration is not None:
                final[SECONDS_PER_ITERATION] = outcome.seconds_per_iteration
            if outcome.seconds_per_test_iteration is not None:
                final[SECONDS_PER_TEST_ITERATION] = outcome.seconds_per_test_iteration
            tracker.log_metrics(run_id, final, step=outcome.examples)
        return outcome


def _eval_points(n: int, eval_every: int | None) -> set[int]:
    every = eval_every or n
    return set(range(every, n + 1, every)) | {n}


def _run_gbp(tracker, outcome: MethodOutcome, config: GBPContinualConfig, data, req, on_progress,
             starting_prior=None):
    from pipeline.gbp.filtering import carry_posterior
    from stages.carry_posterior import POSTERIOR_FOLDER, save_posterior
    from stages.ingest_dataset import minibatches

    model = _gbp_classifier(config, data)
    original = model.initial_prior()
    # a saved posterior (checked to fit by run_continual) enters as if carried from its batch
    prior = original if starting_prior is None else carry_posterior(starting_prior, original, config.filtering_alpha)
    n = len(data.x_train)
    total_batches = -(-n // config.batch_size)
    evals = _eval_points(n, req.eval_every)
    train_seconds, train_iterations = 0.0, 0
    test_timing = {"seconds": 0.0, "iterations": 0, "calls": 0}
    posterior = prior
    scratch = tempfile.TemporaryDirectory(prefix="pipeline-")
    try:
        for index, (images, onehot, labels) in enumerate(minibatches(data.x_train, data.y_train, config.batch_size,
                                                                       config.graph.classes)):
            raise_if_interrupted()
            t0 = time.perf_counter()
            before = model.forward_logits(images, prior)
            posterior, loop_seconds = model.train_batch(images, onehot, prior, config.train_iterations,
                                                        req.seed * 1_000_003 + index)
            prior = carry_posterior(posterior, original, config.filtering_alpha)
            if index > 0 or total_batches == 1:
                train_seconds += loop_seconds
                train_iterations += config.train_iterations
            outcome.examples += len(labels)
            tracker.log_metrics(outcome.run_id, {
                TRAIN_BATCH_ACCURACY: float((before.argmax(1) == labels).mean()),
                SECONDS_PER_BATCH: time.perf_counter() - t0}, step=outcome.examples)
            if outcome.examples in evals:
                metrics = _evaluate_gbp(model, posterior, data, config, req.seed, test_timing)
                tracker.log_metrics(outcome.run_id, metrics, step=outcome.examples)
                outcome.test_accuracy, outcome.test_nll = metrics[TEST_ACCURACY], metrics[TEST_NLL]
                outcome.history.append((outcome.examples, metrics[TEST_ACCURACY]))
            on_progress("gbp", index + 1, total_batches)
    finally:
        if outcome.examples:
            tracker.log_artifact(outcome.run_id, save_posterior(posterior, Path(scratch.name) / POSTERIOR_FILE),
                                 POSTERIOR_FOLDER)
        scratch.cleanup()
        if train_iterations:
            outcome.seconds_per_iteration = train_seconds / train_iterations
        if test_timing["iterations"]:
            outcome.seconds_per_test_iteration = test_timing["seconds"] / test_timing["iterations"]


def _evaluate_gbp(model, posterior, data, config: GBPContinualConfig, seed: int, timing: dict) -> dict:
    from stages.ingest_dataset import as_images

    means, stds = [], []
    bs = config.test_batch_size
    for i in range(0, len(data.x_test), bs):
        mean, std, seconds = model.predict(as_images(data.x_test[i:i + bs]), posterior, config.test_iterations,
                                           seed * 1_000_003 + 999_999 - i)
        if timing["calls"] > 0:  # the first call includes tracing and compilation
            timing["seconds"] += seconds
            timing["iterations"] += config.test_iterations
        timing["calls"] += 1
        means.append(mean)
        stds.append(std)
    return predictive_metrics(np.concatenate(means), np.concatenate(stds), data.y_test, seed)


def _run_linear(tracker, outcome, config, data, req, on_progress):
    from pipeline.baselines.keras_classifiers import train_linear

    def on_epoch(epoch, metrics):
        tracker.log_metrics(outcome.run_id, metrics, step=epoch + 1)
        on_progress("linear", epoch + 1, config.epochs)

    metrics = train_linear(config, data.x_train, data.y_train, data.x_test, data.y_test, req.seed, on_epoch)
    outcome.examples = len(data.x_train)
    outcome.test_accuracy, outcome.test_nll = metrics[TEST_ACCURACY], metrics[TEST_NLL]
    outcome.history.append((outcome.examples, outcome.test_accuracy))
    tracker.log_metrics(outcome.run_id, {TEST_ACCURACY: metrics[TEST_ACCURACY], TEST_NLL: metrics[TEST_NLL]},
                        step=outcome.examples)


def _run_cnn(tracker, outcome, config, data, req, on_progress):
    from pipeline.baselines.keras_classifiers import train_cnn

    n = len(data.x_train)
    total = -(-n // config.batch_size)

    def on_batch(seen, metrics):
        outcome.examples = seen
        tracker.log_metrics(outcome.run_id, metrics, step=seen)
        on_progress("cnn", -(-seen // config.batch_size), total)

    def on_eval(seen, metrics):
        tracker.log_metrics(outcome.run_id, metrics, step=seen)
        outcome.test_accuracy, outcome.test_nll = metrics[TEST_ACCURACY], metrics[TEST_NLL]
        outcome.history.append((seen, metrics[TEST_ACCURACY]))

    train_cnn(config, data.x_train, data.y_train, data.x_test, data.y_test, req.seed,
              req.eval_every or n, on_batch, on_eval)


def _run_message_passing(tracker, outcome, config, data, req, on_progress):
    from pipeline.baselines.binary_mp import train_binary_mp

    def on_epoch(epoch, seen, metrics):
        tracker.log_metrics(outcome.run_id, metrics, step=seen)
        outcome.examples = seen
        outcome.test_accuracy = metrics.get(TEST_ACCURACY)
        outcome.history.append((seen, outcome.test_accuracy))
        on_progress(outcome.method, epoch + 1, config.epochs)

    train_binary_mp(config, data.x_train, data.y_train, data.x_test, data.y_test, on_epoch)
