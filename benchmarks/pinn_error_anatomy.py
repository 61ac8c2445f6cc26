"""Where a trained Allen-Cahn PINN's error sits: the reference's own accuracy, the error by region and time, the
residual there, and where the sampler's last points lie. Trains nothing: it reads seed artifacts written by
``pinn_sampling.py`` (``runs/pinn_sampling/allen_cahn_<sampler>_<tag>_seed<S>.pt``).

Measured for each artifact (``--band`` is the half-width of the centre band, default 0.15):

* relative L2 against DeepXDE's ``Allen_Cahn.mat`` and against our Chebyshev solve on the same grid
  (:func:`sciml.datasets.generators.allen_cahn.solve_allen_cahn`), and the file against the solve;
* the share of the squared error inside ``|x| < band`` and the error of u(0, t) at t = 0.5 and 1
  (x = 0 is where u0 = 0, an unstable state of the reaction);
* the mean |residual| inside and outside the band (on a 401 x 201 grid);
* the share of the artifact's final points inside the band (the band's share of the area is band / 1).

usage: python benchmarks/pinn_error_anatomy.py [ARTIFACT.pt ...] [--band 0.15]
       [--out benchmarks/results/pinn_error_anatomy.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ResultFile, log  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "runs" / "pinn_sampling" / "allen_cahn_rad_paper_float64_seed0.pt"]


def anatomy(path: Path, band: float) -> dict:
    from sciml.datasets.generators.allen_cahn import solve_allen_cahn
    from sciml.operators.pinn import MLP, make_problem

    state = torch.load(path, weights_only=True)
    if state.get("problem") != "allen_cahn":
        raise SystemExit(f"{path}: an artifact of {state.get('problem')!r}, not allen_cahn")
    problem = make_problem("allen_cahn", **state["problem_kwargs"], dtype=torch.float64)
    model = MLP(problem.dim, state["width"], state["depth"]).to(torch.float64)
    model.load_state_dict(state["model"])
    model.eval()
    pts, ref = problem.reference()
    x, t = pts[:, 0].unique(), pts[:, 1].unique()
    nx, nt = len(x), len(t)
    with torch.no_grad():
        pred = problem.solution(model, pts)
    solve = torch.from_numpy(solve_allen_cahn(x.numpy(), t.numpy())).reshape(-1)
    err = (pred - ref).reshape(nt, nx).numpy()
    u = ref.reshape(nt, nx).numpy()
    up = pred.reshape(nt, nx).numpy()
    centre = np.abs(x.numpy()) < band
    i0 = int(np.argmin(np.abs(x.numpy())))
    rows = {f"{float(t[k]):.2f}": k for k in (int(np.argmin(np.abs(t.numpy() - s))) for s in (0.5, 1.0))}
    grid = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 401, dtype=torch.float64),
                                      torch.linspace(0, 1, 201, dtype=torch.float64), indexing="xy"), -1).reshape(-1, 2)
    res = problem.residual(model, grid).detach().abs().numpy()
    in_band = np.abs(grid[:, 0].numpy()) < band
    points = state["points"].numpy()
    worst = np.unravel_index(np.abs(err).argmax(), err.shape)
    return {
        "rel_l2_vs_file": float(np.linalg.norm(err) / np.linalg.norm(u)),
        "rel_l2_vs_chebyshev": float((pred - solve).norm() / solve.norm()),
        "file_vs_chebyshev": float((ref - solve).norm() / solve.norm()),
        "band": band,
        "squared_error_share_in_band": float((err[:, centre] ** 2).sum() / (err ** 2).sum()),
        "max_abs_error": float(np.abs(err).max()),
        "max_abs_error_at": [float(x[worst[1]]), float(t[worst[0]])],
        "u_centre": {s: {"reference": float(u[k, i0]), "pinn": float(up[k, i0])} for s, k in rows.items()},
        "mean_abs_residual": {"all": float(res.mean()), "in_band": float(res[in_band].mean()),
                              "outside": float(res[~in_band].mean())},
        "points_share_in_band": float((np.abs(points[:, 0]) < band).mean()),
        "area_share_of_band": band,
        "num_points": int(len(points)),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifacts", nargs="*", type=Path, default=DEFAULT)
    p.add_argument("--band", type=float, default=0.15)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pinn_error_anatomy.json"))
    args = p.parse_args(argv)
    if not 0 < args.band < 1:
        raise SystemExit(f"--band must lie in (0, 1), got {args.band}")
    results = ResultFile(args.out, {"task": "pinn_error_anatomy", "problem": "allen_cahn", "band": args.band},
                         fresh=True)
    for path in args.artifacts:
        if not path.is_file():
            raise SystemExit(f"{path}: no such artifact (run benchmarks/pinn_sampling.py first)")
        rec = anatomy(path, args.band)
        results.add(path.stem, rec)
        log(f"{path.stem}: rel L2 {rec['rel_l2_vs_file']:.3e} (file vs Chebyshev {rec['file_vs_chebyshev']:.1e}); "
            f"{100 * rec['squared_error_share_in_band']:.0f} % of the squared error in |x| < {args.band}; "
            f"residual {rec['mean_abs_residual']['in_band']:.2e} there, {rec['mean_abs_residual']['all']:.2e} in all; "
            f"{100 * rec['points_share_in_band']:.1f} % of the points there")
    log(f"-> {args.out}")


if __name__ == "__main__":
    main()
