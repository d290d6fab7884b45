"""How much of the protocol's seed-to-seed spread is the random initialisation?

    python benchmarks/init_sensitivity.py --bear ../shared/data/bear --model single_layer \
        --noise-seed 1 --init-seeds 1,2,3,4 [--init random] [--frames 6]

Runs the paper's video protocol (258×454, the first 6 frames, impulse:0.1, the config's
iterations, posteriors carried) on ONE noise draw (``--noise-seed``, which also draws the dropout
masks, as in ``pipeline denoise --seed``) once per initialisation seed (``init_seed``: the random
initial linearisation points of coefficients and filters), and prints PSNR (dB) per frame with
the mean and standard deviation over initialisations.  ``--init-seeds`` equal to the noise seed
reproduces ``pipeline denoise ... --seed S`` exactly.  Both learned configs start their first
layer at the frame's principal patches, which no seed changes (five_layer's upper layers still
start at random); ``--init random`` runs them with random starts instead.
In-process, nothing is logged; about 3.5 min per initialisation for single_layer and 15 min for
five_layer on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from pipeline.denoise import DenoiseRequest, FrameSource, prepare_frames  # noqa: E402
from pipeline.methods import DeepMethod, load_method  # noqa: E402
from stages.evaluate import image_quality  # noqa: E402
from stages.infer import GBPFrameDenoiser  # noqa: E402
from benchmarks.video_protocol import HEIGHT, NOISE, WIDTH  # noqa: E402


def psnr_per_frame(method: DeepMethod, name: str, source: FrameSource, seed: int,
                   init_seed: int, init: str) -> list[float]:
    graph = dataclasses.replace(method.graph, init_seed=init_seed, init=init or method.graph.init)
    config = dataclasses.replace(method, graph=graph)
    denoise = GBPFrameDenoiser(name, config, seed)
    return [image_quality(denoise(noisy).estimate, clean)["psnr"]
            for noisy, clean in source.frames()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bear", default="../shared/data/bear", help="folder of the DAVIS bear frames")
    parser.add_argument("--model", default="single_layer", help="a learned (deep) denoise config")
    parser.add_argument("--noise-seed", type=int, default=1)
    parser.add_argument("--init-seeds", default="1,2,3,4")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--init", choices=["random", "principal_patches"],
                        help="override the config's graph.init (principal_patches: the first layer starts at the frame's principal patches)")
    args = parser.parse_args(argv)
    if not Path(args.bear).is_dir():
        parser.error(f"{args.bear} is not a folder of frames")
    method = load_method(args.model)
    if not isinstance(method, DeepMethod):
        parser.error(f"{args.model} is not a learned model (method: deep)")
    # the protocol's frames, exactly as `pipeline denoise --seed NOISE_SEED` ingests them
    source = prepare_frames(DenoiseRequest(input=Path(args.bear), height=HEIGHT, width=WIDTH, frames=args.frames,
                                           noise=NOISE, seed=args.noise_seed))
    rows = {}
    print(f"{args.model} (init: {args.init or method.graph.init}): PSNR (dB) per frame, noise seed {args.noise_seed}")
    for init_seed in (int(s) for s in args.init_seeds.split(",")):
        rows[init_seed] = psnr_per_frame(method, args.model, source, args.noise_seed, init_seed, args.init)
        print(f"  init {init_seed:<4}" + "".join(f"{p:8.2f}" for p in rows[init_seed]), flush=True)
    values = np.array(list(rows.values()))
    print("  mean      " + "".join(f"{p:8.2f}" for p in values.mean(0)))
    if len(rows) > 1:
        print("  std       " + "".join(f"{p:8.2f}" for p in values.std(0, ddof=1)))


if __name__ == "__main__":
    main()
