"""The compiled GBP iteration loop: one ``tf.while_loop`` inside one ``tf.function``.

A model supplies ``step(state, iteration) -> state`` over a nested structure of tensors.  The
loop is traced once per input shape and reused for every later frame or batch of that shape;
``jit=True`` additionally compiles it with XLA (measure: on CPU it can be slower for small-matrix
work).
"""
from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

Step = Callable[[Any, tf.Tensor], Any]


def compile_loop(step: Step, jit: bool = False) -> Callable[[Any, tf.Tensor, tf.Tensor], Any]:
    """Return ``run(state, first_iteration, n_iterations) -> state`` (one compiled loop)."""

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def run(state, first_iteration, n_iterations):
        first_iteration = tf.cast(first_iteration, tf.int32)
        stop = first_iteration + tf.cast(n_iterations, tf.int32)

        def body(i, s):
            return i + 1, step(s, i)

        _, state = tf.while_loop(
            lambda i, s: i < stop, body, (first_iteration, state), parallel_iterations=1
        )
        return state

    return run


def edge_seed(seed: int, edge_id: int, iteration: tf.Tensor) -> tf.Tensor:
    """Stateless-RNG seed for the dropout mask of one edge family at one iteration.

    Distinct per run seed, per edge family and per iteration (the reference implementation
    shared masks across same-shaped edges; that is an artefact we do not reproduce).
    """
    return tf.stack([tf.constant(seed * 1000 + edge_id, tf.int64), tf.cast(iteration, tf.int64)])
