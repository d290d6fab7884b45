"""The classical robust GBP denoiser: pixel observations plus 4-neighbour smoothness, no learning.

One layer, so one iteration = one visit: cavities from the current marginals → pairwise
factor messages and pixel-observation messages (robust weights at the current means, damped)
→ marginals → relinearise (new means).  The reference implementation writes the observation
message twice per iteration (a side effect of its state setter); we write it once.
"""
from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from pipeline.gbp.factors.pairwise_smoothness import PairwiseSmoothness
from pipeline.gbp.factors.pixel_observation import pixel_observation_message
from pipeline.gbp.gaussian import Gaussian
from pipeline.gbp.loop import edge_seed
from pipeline.gbp.messages import check_message_schedule, damped_update
from pipeline.gbp.robust import check_positive, check_robust_kind


@dataclass(frozen=True)
class PairwiseSmootherConfig:
    pixel_sigma: float = 0.2
    pixel_n_rob: float | None = 0.14
    smoothness_sigma: float = 1.3
    smoothness_n_rob: float | None = 0.35
    robust_kind: str = "tukey"
    damping: float = 0.7
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self):
        check_robust_kind(self.robust_kind)
        check_positive(pixel_sigma=self.pixel_sigma, smoothness_sigma=self.smoothness_sigma,
                       pixel_n_rob=self.pixel_n_rob, smoothness_n_rob=self.smoothness_n_rob)
        check_message_schedule(self.damping, self.dropout)


class PairwiseSmoother:
    def __init__(self, config: PairwiseSmootherConfig):
        self.config = config
        self.smoothness = PairwiseSmoothness(config.smoothness_sigma, config.smoothness_n_rob,
                                             config.robust_kind)

    def _observation(self, noisy, mean):
        c = self.config
        return pixel_observation_message(noisy, mean, c.pixel_sigma, c.pixel_n_rob, c.robust_kind)

    def initial_state(self, noisy, prior=None):
        """Pixel means start at the observation; observation message unweighted; others 0."""
        noisy = tf.convert_to_tensor(noisy, tf.float32)
        return {
            "noisy": noisy,
            "observation": self._observation(noisy, noisy),
            "pairs": self.smoothness.zero_messages(noisy),
            "mean": noisy,
        }

    def _marginal(self, observation, pairs) -> Gaussian:
        return observation + self.smoothness.message_sum(pairs)

    def step(self, state, iteration):
        c = self.config
        first = iteration == 0
        marginal = self._marginal(state["observation"], state["pairs"])
        new_pairs = self.smoothness.messages(marginal, state["pairs"], state["mean"])
        pairs = type(new_pairs)(*[
            damped_update(old, new, c.damping, c.dropout, edge_seed(c.seed, e, iteration), first)
            for e, (old, new) in enumerate(zip(state["pairs"], new_pairs))
        ])
        observation = damped_update(
            state["observation"], self._observation(state["noisy"], state["mean"]),
            c.damping, c.dropout, edge_seed(c.seed, 2, iteration), first)
        mean = self._marginal(observation, pairs).mean
        return {"noisy": state["noisy"], "observation": observation, "pairs": pairs, "mean": mean}

    def pixel_marginal(self, state) -> Gaussian:
        return self._marginal(state["observation"], state["pairs"])

    def parameter_posterior(self, state):
        return {}

    def minimum_size(self) -> int:
        """Every pixel needs a neighbour in both directions."""
        return 2

    def estimated_bytes(self, height: int, width: int, channels: int) -> int:
        """Peak working set of one frame: state ≈ 20 floats per pixel-channel (observation,
        8 pair-message tensors of 4 directions, means) and temporaries of a few times that."""
        return 4 * 80 * height * width * channels

    def bytes_moved_per_iteration(self, height: int, width: int, channels: int) -> int:
        """Float32 tensor traffic of one iteration, counted at the algorithm level: read 8 pair-
        message tensors and 4 neighbour gathers of (η, Λ) and means, write 8 message tensors, plus
        the observation and marginal updates (≈ 30 factor-sized and 12 pixel-sized tensors)."""
        factors = 4 * (height - 2) * (width - 2) * channels
        return 4 * (30 * factors + 12 * height * width * channels)
