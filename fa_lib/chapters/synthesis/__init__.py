"""Chapter "Three theories on one network" (``notebooks/04_synthesis.ipynb``; book page ``generated/04_synthesis``).

Robertson & Koyejo's per-neuron law, Song, Xu & Lafferty's alignment against width and Chu &
Bacho's stability criterion, measured on the same FA runs, each with no L2, L2 on the readout
(Song's) and L2 on every layer, stacked setting-major on the same draws (a paired comparison).
Three families of runs (:data:`FAMILIES`):

* ``two-layer``: Song's ReLU model ``[W (S, p, k), beta (S, 1, p)]`` on Song's synthetic teacher task, in
  row-space coordinates (``k = n``), feedback ``[None, b]``, readout scale ``1/sqrt(p)``;
* ``three-layer``: the same task with a second hidden layer ``W_2 (S, p, p)`` (scale ``1/sqrt(p)``, feedback
  ``B_2``), everything N(0, 1);
* ``real``: the primer's network (784-128-128-10 ReLU, LeCun initialisation, cross-entropy, SGD in
  mini-batches) on the primer's data set.

Song's tasks use the authors' ReLU learning rate and ``lambda`` in their MSELoss convention
(fa_lib's ``eta = 2 lr``, ``l2 = lam / 2``) and run the authors' ``T_min(p)`` steps. The two
identities the chapter derives and tests:

* the per-neuron law with L2 (:func:`~fa_lib.theory.conservation.step_change_with_l2`); summed
  over the neurons of hidden layer ``k`` it predicts the alignment of the layer above from the layer
  below alone, ``u(t+1) = (1 - eta l2_{k+1}) u(t) + 1/2 (||W_k(t+1)||^2 - ||W_k(t)||^2
  + 2 eta l2_k ||W_k(t)||^2 - eta^2 ||G_k(t) + l2_k W_k(t)||^2)`` with ``u = <W_{k+1}, B_{k+1}>``
  (:class:`AlignmentLaw`);
* at a zero-error point of the two-layer model Chu & Bacho's reduced matrix ``(1/N) G_m . G~_n`` is Song's
  FA kernel ``(G + H)/N`` with partner ``b`` (:func:`fa_lib.theory.song.stability_matrix`).

* :mod:`.profiles`: profiles, settings, the chapter's parameters and seeds;
* :mod:`.experiments`: the runs, the law tracker, stability at the end, the jobs;
* :mod:`.rest`: the runs taken to rest with L2 on both layers;
* :mod:`.width`: the untracked runs and fits of the width law;
* :mod:`.points`: Chu & Bacho's criterion at zero-error points FA did not choose;
* :mod:`.claims`: the records and claims Y1-Y8;
* :mod:`.figures`: figures and tables.
"""

from .claims import ZERO_ERROR, point_claims, readout_only_claims, record_claims, record_runs, rest_claims, width_claims
from .experiments import AlignmentLaw, Run, collect, end_rows, job_cost, l2_per_layer, measure, plan, song_task
from .figures import alignment_figure, drift_figure, runs_table, stability_figure, theory_table, width_figure
from .points import point_rows
from .rest import readout_only_rows, rest_rows
from .width import width_fits, width_runs
from .profiles import ACTIVATION, FAMILIES, LAMBDA, LR, PROFILES, REAL_LAMBDA, SETTINGS, chapter_parameters, chapter_seeds

__all__ = ["ACTIVATION", "ZERO_ERROR", "AlignmentLaw", "FAMILIES", "LAMBDA", "LR", "PROFILES", "REAL_LAMBDA", "Run", "SETTINGS", "alignment_figure",
           "chapter_parameters", "chapter_seeds", "collect", "drift_figure", "end_rows", "job_cost", "l2_per_layer", "measure", "plan",
           "point_claims", "point_rows", "readout_only_claims", "readout_only_rows", "record_claims", "record_runs", "rest_claims", "rest_rows", "runs_table", "width_claims", "width_figure", "width_fits", "width_runs", "song_task", "stability_figure", "theory_table"]
