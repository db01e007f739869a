"""Monte-Carlo BLER/BER sweeps of the coded link on Ray, with a design's float model or its
built package's integers in the loop.

``python -m sweep configs/sweeps/<name>.yaml [--address HOST:PORT] [--workers N]
[--out results/sweeps]`` (``make sweep SWEEP=...``).

* :mod:`sweep.config`: the YAML format (pydantic; unknown keys refused, errors name the
  file and the key);
* :mod:`sweep.stats`: the stopping rule and the 95% intervals;
* :mod:`sweep.link`: one chunk of codewords through the link (seeded by chunk; i.i.d.
  Rayleigh, AWGN, EPA or CDL-A);
* :mod:`sweep.processing`: the float and integer soft-bit loops (the stage's only
  imports of other stages: ``export.reference``, ``host.driver``, ``host.package``), and
  the estimators of estimation curves ((y, H_est, noise_std) -> LLRs, no detector);
* :mod:`sweep.journal`: the append-only chunk journal (resume);
* :mod:`sweep.runner` / :mod:`sweep.task`: Ray orchestration and the Ray task;
* :mod:`sweep.plot`: the figure.
"""
