"""Link-level simulation: constellations, channels, exact LLRs, detectors, LDPC, BLER.

LLR sign convention (project-wide, same as Sionna)::

    L = ln P(b = 1 | y) / P(b = 0 | y)

so L > 0 favours bit 1 and the soft bit ``tanh(L/2) = P(1) - P(0)``. The papers'
MATLAB code uses the opposite sign (ln P(0)/P(1)); negate when comparing.

SNR: ``SNR = E_s/N0`` with unit-energy symbols and unit-variance channel taps,
``noise_var = N0 = 10**(-snr_db/10)`` per receive antenna (see ``phy.channels``).

Modules: ``constellation`` (Gray QAM/BPSK), ``llr`` (exact/max-log MIMO LLRs,
soft bits), ``channels`` (Rayleigh, AWGN, imperfect CSI, SNR helpers), ``wideband``
(EPA, CDL-A), ``multiuser`` (12x4 task-based model, MAP/QMAP), ``detectors`` (ML,
ZF-SIC, ZF, LMMSE, K-best), ``ldpc`` (802.11n code, encoder, BP decoder),
``interleaver``, ``datasets`` (cached LLR training sets), ``theory`` (closed-form
BER), ``link`` (end-to-end BLER harness), ``bench``, ``reference_curve``.

Bit order of a MIMO LLR vector: stream 0's bits first, each stream's bits in
label order (MSB first), Gray labelling identical to Sionna's QAM.
"""
