"""Link-level simulation: constellations, channels, exact LLRs, detectors, LDPC, BLER.

LLR sign convention (project-wide, same as Sionna)::

    L = ln P(b = 1 | y) / P(b = 0 | y)

so L > 0 favours bit 1 and the soft bit ``tanh(L/2) = P(1) - P(0)``. The papers'
MATLAB code uses the opposite sign (ln P(0)/P(1)); negate when comparing.

SNR: ``SNR = E_s/N0`` with unit-energy symbols and unit-variance channel taps,
``noise_var = N0 = 10**(-snr_db/10)`` per receive antenna (see ``phy.channels``).

Bit order of a MIMO LLR vector: stream 0's bits first, each stream's bits in
label order (MSB first), Gray labelling identical to Sionna's QAM.
"""
