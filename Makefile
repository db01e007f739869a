# Compiler flow: phy -> train -> export -> hw (FINN -> RTL) -> bitstreams/<design>-<board>/
# Designs and boards are names of files under configs/.
SHELL := /bin/bash
PY ?= .venv/bin/python
DESIGN ?= eqnet-fq-uniform-2x2-64qam
BOARD ?= pynq-z2
RECIPE ?= short
VECTORS ?= 10000
RUN_DIR := runs/$(DESIGN)
# SPEED=max: the fastest configuration (folding and impl) that fits the board (hw/speed.py).
SPEED ?=
PKG := bitstreams/$(DESIGN)-$(BOARD)$(if $(filter max,$(SPEED)),-max)
STAMP := .venv/.setup-$(shell sha256sum requirements.lock | cut -c1-16)

.PHONY: setup lock test test-slow lint main train export hw bench-phy phy-curve clean-build

# Idempotent: re-runs only when requirements.lock changes.
setup: $(STAMP)
$(STAMP): requirements.lock
	@test -x .venv/bin/python || python3 -m venv .venv
	# Whole resolved set, no resolver: torch stays the CPU build, nothing else is pulled.
	.venv/bin/pip install --quiet --no-deps -r requirements.lock
	-.venv/bin/pip check  # expected: finn-plus pins brevitas==0.13.0; we run 0.13.4 (see requirements.txt)
	@rm -f .venv/.setup-*; touch $@

# Re-resolve requirements.txt into requirements.lock (needs network to PyPI).
lock:
	rm -rf /tmp/lockvenv && python3 -m venv /tmp/lockvenv
	/tmp/lockvenv/bin/pip install torch==2.13.0 $$(grep -vE '^(#|$$|finn-plus|torch)' requirements.txt)
	/tmp/lockvenv/bin/pip install --no-deps finn-plus==1.6.1
	(echo "# Full pinned lock, installed with --no-deps by 'make setup' (see requirements.txt for the intent)."; \
	 echo "# Regenerate: make lock (after editing requirements.txt)."; \
	 /tmp/lockvenv/bin/pip freeze --all | grep -vE "^(pip|wheel)==" | grep -v '^finn-plus'; echo "finn-plus==1.6.1") > requirements.lock

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(PY) -m ruff check .

# The main job: short training, export, the FINN flow for one design and board, and the
# Verilator co-simulation of the RTL on every golden vector (no Yosys: that is make sim).
main: setup
	$(MAKE) train export hw DESIGN=$(DESIGN) BOARD=$(BOARD) RECIPE=$(RECIPE) COSIM=1

train: setup
	$(PY) -m train --design $(DESIGN) --recipe $(RECIPE) --out $(RUN_DIR)

export: setup
	$(PY) -m export --design $(DESIGN) --run $(RUN_DIR) --vectors $(VECTORS)

# COSIM=1: the package is swapped in only after its RTL co-simulation passes too.
COSIM ?= 0
hw: setup
	$(PY) -m hw --design $(DESIGN) --board $(BOARD) --run $(RUN_DIR) --out $(PKG) \
	  $(if $(filter 1,$(COSIM)),--cosim) $(if $(SPEED),--speed $(SPEED))

bench-phy: setup
	$(PY) -m phy.bench --out results/phy

# Reference BLER curve: ML vs ZF-SIC vs LMMSE, 2x2 64-QAM Rayleigh, 802.11n LDPC (~5 min).
phy-curve: setup
	$(PY) -m phy.reference_curve --out results/phy

clean-build:
	rm -rf build/$(DESIGN)-$(BOARD) $(PKG)

# Issue 4: Verilator co-simulation (>= SIM_VECTORS vectors under random back-pressure),
# latency/II, Yosys resource counts; resumable (stages redo only when their inputs change).
# YOSYS: 0 = no Yosys; top = the whole stitched top (default); layers = each module the top
# instantiates on its own; all = both. Yosys runs go one per CPU in parallel (each is
# single-threaded); counts of an earlier run on the same RTL stay in the manifest.
SIM_VECTORS ?= 100000
YOSYS ?= top
.PHONY: sim bitstream
sim: setup
	$(PY) -m hw.rtlsim --pkg $(PKG) --design $(DESIGN) --board $(BOARD) --vectors $(SIM_VECTORS) \
	  --yosys '$(YOSYS)'

# hw, then sim, then FINN's Vivado steps (stitched IP, bitfile, driver) where Vivado is
# installed; without Vivado it exits non-zero, listing what was built, verified and missing.
bitstream: setup
	$(MAKE) hw sim DESIGN=$(DESIGN) BOARD=$(BOARD) PKG=$(PKG) RUN_DIR=$(RUN_DIR)
	$(PY) -m hw.vivado --design $(DESIGN) --board $(BOARD) --pkg $(PKG)

# Issue 5: host runtime. verify: golden + fresh channel vectors through the driver (rtlsim
# off-board, the .bit on a PYNQ board); bench-host: CPU/GPU vs FPGA (RTL cycles), JSON + PNG.
HOST_BACKEND ?= auto
HOST_VECTORS ?= 20000
.PHONY: verify bench-host
verify: setup
	$(PY) -m host verify $(PKG) --backend $(HOST_BACKEND) --vectors $(HOST_VECTORS)

bench-host: setup
	$(PY) -m host bench $(PKG) --out results/host

# Monte-Carlo BLER/BER sweep on Ray (local instance by default; ADDRESS=host:port joins a
# cluster; WORKERS=N limits the chunks run at once). Resumable: re-run after an interrupt.
SWEEP ?= configs/sweeps/$(DESIGN).yaml
SWEEP_OUT ?= results/sweeps
.PHONY: sweep
sweep: setup
	$(PY) -m sweep $(SWEEP) --out $(SWEEP_OUT) $(if $(WORKERS),--workers $(WORKERS)) \
	  $(if $(ADDRESS),--address $(ADDRESS))

# The Tanh bit-wise MIMO autoencoder paper (issue 17): Figs. 1a-1d, Table 2 and the
# ablations into results/bae/ (summary.json: paper | float | integer | gap). Needs the runs
# of bae-rx-{2x2,4x4,8x8}-k2 (make train) and, for the integer curves, the packages of
# bae-{tx,rx}-*-k2 for $(BOARD) (make train export hw); RECIPE=full for the full recipes.
.PHONY: paper-bae
paper-bae: setup
	$(PY) -m paper.bae --out results/bae --recipe $(RECIPE) --board $(BOARD)
